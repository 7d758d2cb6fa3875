-- The text each campaign message was sent with: its campaign's template
-- rendered for the recipient (spintax picked, variables filled), as the
-- attempt recorded it (`MessageSendingStarted.text`). Null until a sender
-- takes the message, for messages whose template could not be rendered,
-- and for attempts recorded before the text was kept.

alter table messages add column text text;
