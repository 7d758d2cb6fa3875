-- The sender governor asks, before a send to a recipient, whether the
-- sending session ever exchanged messages with them (a message sent to
-- them, or one received from them): a new contact is held to the
-- governor's new-contact caps and restrictions.
create index if not exists messages_sent_by_session_to_peer
    on messages (session_id, phone)
    where sent_at is not null;
