-- What kind of message each received message is (`text`, `image`,
-- `video`, `audio`, `document`, `sticker`, `location`, `contact`,
-- `reaction`, `interactive`, `other`), as its driver reported it
-- (`InboundMessageReceived.kind`); null for messages recorded before the
-- kind was kept.

alter table inbound_messages add column kind text collate "C";
