//! The send queue: one JetStream work-queue stream of send commands, one
//! subject per sending session (`<prefix>.send.<tenant>.<session>`).
//!
//! The campaign fan-out puts a [`SendCommand`] per queued message on the
//! subject of the session meant to send it, up to
//! [`SendQueue::COMMANDS_PER_MESSAGE`] of them in one queue message (a
//! large campaign costs the queue a sixteenth of the publishes, pulls and
//! acks). The engine running that session takes them in order through one
//! durable consumer per session (`send-<session>`) and answers a queue
//! message once the outcome of every command in it is recorded
//! ([`Taken`]). The queue says *what to try next*; the message aggregate
//! says *what happened*, so a command delivered twice (a redelivery, a
//! queue message given back for one of its commands, a fan-out that
//! resumed after a crash) finds its message past `queued` and is dropped:
//! nothing is sent twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js};
use serde::{Deserialize, Serialize};
use tracing::warn;
use uuid::Uuid;
use wablast_domain::message::QueuedMessage;
use wablast_domain::types::{CampaignId, MessageId, SessionId, TenantId};
use wablast_eventstore::{EventStoreError, Prefix};

/// One message to send, as queued for a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCommand {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The campaign.
    pub campaign_id: CampaignId,
    /// The message (its aggregate holds the recipient and the status, once
    /// it has a history).
    pub message_id: MessageId,
    /// For a message queued alone (before recipient batches): where the
    /// fan-out queued it on the log (its first commit's stream sequence),
    /// so that the first delivery of the command reads the message there
    /// instead of searching for its last commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<u64>,
    /// The message as its recipient batch queued it, for its first commit
    /// (`None`: the message was queued alone, and has a history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Box<QueuedMessage>>,
}

impl SendCommand {
    /// The command as given to another sender: the message may have moved
    /// on since it was queued, so it is read from the log there.
    pub fn moved(self) -> Self {
        Self {
            queued_at: None,
            ..self
        }
    }
}

/// The send queue of an installation.
#[derive(Clone, Debug)]
pub struct SendQueue {
    jetstream: js::Context,
    prefix: Prefix,
    stream: stream::Stream,
}

impl SendQueue {
    /// How long a taken command may stay unanswered before it is given to
    /// the session's next consumer (the loop reports progress while it
    /// waits, so this only covers an engine that died).
    pub const ACK_WAIT: Duration = Duration::from_secs(15);

    /// Commands a session's loop has in hand at most: those being
    /// admitted and the sends under way.
    pub const MAX_TAKEN: usize = 64;

    /// Commands one queue message carries at most.
    pub const COMMANDS_PER_MESSAGE: usize = 16;

    /// Queue messages a session's consumer hands out before the first is
    /// answered: room for [`SendQueue::MAX_TAKEN`] commands, and a message
    /// whose last command is still being sent.
    pub const MESSAGES_TAKEN: usize = Self::MAX_TAKEN / Self::COMMANDS_PER_MESSAGE * 2;

    /// Opens the queue, creating its stream (`<prefix>_SENDS`) if needed.
    pub async fn open(jetstream: &js::Context, prefix: &Prefix) -> Result<Self, EventStoreError> {
        let name = Self::stream_name(prefix);
        // Created by the first process that needs it; side by side with
        // others on a new installation (see `ensure_stream`).
        let stream = wablast_eventstore::ensure_stream(
            jetstream,
            stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.send.>")],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                num_replicas: prefix.replicas().count(),
                // A fan-out that resumes within this window republishes
                // nothing; after it, the message aggregate drops repeats.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            },
        )
        .await?;
        Ok(Self {
            jetstream: jetstream.clone(),
            prefix: prefix.clone(),
            stream,
        })
    }

    /// The stream's name.
    pub fn stream_name(prefix: &Prefix) -> String {
        prefix.stream_name("sends")
    }

    /// The subject of one session's commands.
    pub fn subject(&self, tenant: TenantId, session: SessionId) -> String {
        format!("{}.send.{tenant}.{session}", self.prefix)
    }

    /// Queues `commands` (one tenant's, at most
    /// [`SendQueue::COMMANDS_PER_MESSAGE`]) for `session` as one queue
    /// message. The returned future resolves once the server stored it;
    /// queue many before awaiting them.
    pub async fn publish(
        &self,
        session: SessionId,
        commands: &[SendCommand],
    ) -> Result<PublishAckFuture, EventStoreError> {
        let Some(first) = commands.first() else {
            return Err(EventStoreError::Nats("no send command to queue".into()));
        };
        debug_assert!(commands.len() <= Self::COMMANDS_PER_MESSAGE);
        debug_assert!(commands.iter().all(|c| c.tenant_id == first.tenant_id));
        let payload = serde_json::to_vec(commands).expect("send commands serialize");
        // The same commands for the same session are the same message (a
        // fan-out that resumed within the duplicate window); moved to
        // another sender, they are a new one there.
        let mut name = Vec::with_capacity(16 * (commands.len() + 1));
        name.extend_from_slice(session.as_uuid().as_bytes());
        for command in commands {
            name.extend_from_slice(command.message_id.as_uuid().as_bytes());
        }
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, &name);
        self.jetstream
            .send_publish(
                self.subject(first.tenant_id, session),
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(id.to_string()),
            )
            .await
            .map_err(EventStoreError::nats)
    }

    /// The commands of a queue message: a list, or one command alone (as
    /// queued before commands travelled together).
    pub fn decode(payload: &[u8]) -> Result<Vec<SendCommand>, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Payload {
            Many(Vec<SendCommand>),
            One(SendCommand),
        }
        Ok(match serde_json::from_slice(payload)? {
            Payload::Many(commands) => commands,
            Payload::One(command) => vec![command],
        })
    }

    /// The commands `message` carries; `None` for one that carries none or
    /// does not decode, which is acknowledged (it would never decode) and
    /// dropped with a warning.
    pub async fn commands_in(message: &js::Message) -> Option<Vec<SendCommand>> {
        match Self::decode(&message.payload) {
            Ok(commands) if !commands.is_empty() => Some(commands),
            _ => {
                warn!(subject = %message.subject, "undecodable send command dropped");
                let _ = message.double_ack_with(AckKind::Ack).await;
                None
            }
        }
    }

    /// The durable name of a session's consumer.
    pub fn consumer_name(session: SessionId) -> String {
        format!("send-{session}")
    }

    /// The session's consumer: its commands in order, at most
    /// [`SendQueue::MESSAGES_TAKEN`] queue messages out at a time.
    pub async fn consumer(
        &self,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<PullConsumer, EventStoreError> {
        let name = Self::consumer_name(session);
        self.stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subject(tenant, session),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Self::ACK_WAIT,
                    max_deliver: -1,
                    max_ack_pending: Self::MESSAGES_TAKEN as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(EventStoreError::nats)
    }

    /// Removes a session's consumer (its commands stay in the queue).
    pub async fn remove_consumer(&self, session: SessionId) -> Result<(), EventStoreError> {
        match self
            .stream
            .delete_consumer(&Self::consumer_name(session))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.to_string().contains("not found") => Ok(()),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// A consumer that reads (and takes) every command queued for
    /// `session`, for moving them elsewhere. The session's own consumer
    /// must be gone ([`SendQueue::remove_consumer`]): a work queue lets one
    /// consumer at a time read a subject.
    pub async fn drain_consumer(
        &self,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<PullConsumer, EventStoreError> {
        self.stream
            .create_consumer(pull::Config {
                filter_subject: self.subject(tenant, session),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(EventStoreError::nats)
    }

    /// Removes a consumer made by [`SendQueue::drain_consumer`]; what it
    /// had not acknowledged goes back to the queue.
    pub async fn remove_drain(&self, mut drain: PullConsumer) -> Result<(), EventStoreError> {
        let name = drain
            .info()
            .await
            .map_err(EventStoreError::nats)?
            .name
            .clone();
        self.stream
            .delete_consumer(&name)
            .await
            .map(|_| ())
            .map_err(EventStoreError::nats)
    }
}

/// What became of a command, as the queue is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done with (sent, failed, dropped).
    Done,
    /// Not now: again after this long.
    Later(Duration),
    /// The loop stops (shut down, or the session is no longer ready):
    /// given back at once.
    Stopped,
}

impl Answer {
    /// What a queue message says for two of its commands: back at once
    /// before later, the sooner of two laters, done only when both are.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Stopped, _) | (_, Self::Stopped) => Self::Stopped,
            (Self::Later(a), Self::Later(b)) => Self::Later(a.min(b)),
            (Self::Later(a), Self::Done) | (Self::Done, Self::Later(a)) => Self::Later(a),
            (Self::Done, Self::Done) => Self::Done,
        }
    }
}

/// One command's share of the queue message that carried it.
///
/// The message is answered once every command it carries is: acknowledged
/// when all are done; otherwise given back, at once or after the shortest
/// wait one of them asked for. Its commands that were done then come back
/// with the others and are dropped (their messages moved on). A share
/// dropped unanswered (a delivery that panicked) leaves the message to come
/// back after the ack wait.
#[derive(Clone, Debug)]
pub struct Taken {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    message: js::Message,
    first_delivery: bool,
    /// Shares not answered yet, and what the answered ones said.
    answers: Mutex<(usize, Answer)>,
}

impl Taken {
    /// The commands of `message`, each with its share; an undecodable
    /// message yields none ([`SendQueue::commands_in`]).
    pub async fn split(message: js::Message) -> Vec<(Taken, SendCommand)> {
        let Some(commands) = SendQueue::commands_in(&message).await else {
            return Vec::new();
        };
        let first_delivery = message.info().is_ok_and(|info| info.delivered == 1);
        let shared = Arc::new(Shared {
            message,
            first_delivery,
            answers: Mutex::new((commands.len(), Answer::Done)),
        });
        commands
            .into_iter()
            .map(|command| {
                (
                    Taken {
                        shared: shared.clone(),
                    },
                    command,
                )
            })
            .collect()
    }

    /// Whether the queue message comes for the first time (not given back,
    /// not redelivered).
    pub fn first_delivery(&self) -> bool {
        self.shared.first_delivery
    }

    /// How many times the queue message has come (1 the first time).
    pub fn deliveries(&self) -> u64 {
        self.shared
            .message
            .info()
            .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1))
    }

    /// Tells the queue the message is still being worked on.
    pub async fn progress(&self) {
        let _ = self.shared.message.ack_with(AckKind::Progress).await;
    }

    /// Answers for this command; the last of a message's commands to
    /// answer answers the queue for all of them.
    pub async fn answer(self, answer: Answer) {
        let all = {
            let mut answers = self.shared.answers.lock().expect("answers lock");
            answers.0 -= 1;
            answers.1 = answers.1.and(answer);
            (answers.0 == 0).then_some(answers.1)
        };
        let Some(all) = all else { return };
        let message = &self.shared.message;
        let answered = match all {
            // A plain ack: one lost comes back as a redelivery, whose
            // commands find their messages past `queued` and are dropped.
            Answer::Done => message.ack().await,
            Answer::Later(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
            Answer::Stopped => message.ack_with(AckKind::Nak(None)).await,
        };
        if let Err(err) = answered {
            warn!(error = %err, subject = %message.subject, "send commands not answered; they come back after the ack wait");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(n: u128) -> SendCommand {
        SendCommand {
            tenant_id: TenantId::from_uuid(Uuid::from_u128(1)),
            campaign_id: CampaignId::from_uuid(Uuid::from_u128(2)),
            message_id: MessageId::from_uuid(Uuid::from_u128(n)),
            queued_at: n.is_multiple_of(2).then_some(n as u64),
            // Every third: as a recipient batch queued it.
            queued: n.is_multiple_of(3).then(|| {
                Box::new(QueuedMessage {
                    message_id: MessageId::from_uuid(Uuid::from_u128(n)),
                    campaign_id: CampaignId::from_uuid(Uuid::from_u128(2)),
                    session_id: SessionId::from_uuid(Uuid::from_u128(9)),
                    to: "+6281234567890".parse().unwrap(),
                    name: Some("Budi".to_owned()),
                    variables: [("kota".to_owned(), "Bandung".to_owned())].into(),
                    content: None,
                    at: chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
                })
            }),
        }
    }

    #[test]
    fn a_queue_message_carries_a_list_of_commands_or_one_alone() {
        let many = vec![command(3), command(4), command(6)];
        let payload = serde_json::to_vec(&many).unwrap();
        assert_eq!(SendQueue::decode(&payload).unwrap(), many);
        let one = serde_json::to_vec(&command(5)).unwrap();
        assert_eq!(SendQueue::decode(&one).unwrap(), vec![command(5)]);
        assert!(SendQueue::decode(b"{\"tenant_id\": 1}").is_err());
        assert!(SendQueue::decode(b"[]").unwrap().is_empty());
    }

    #[test]
    fn a_queue_message_is_done_only_when_every_command_is() {
        use Answer::*;
        let s = Duration::from_secs;
        assert_eq!(Done.and(Done), Done);
        assert_eq!(Done.and(Later(s(5))), Later(s(5)));
        assert_eq!(Later(s(5)).and(Later(s(1))), Later(s(1)), "the sooner wait");
        assert_eq!(Later(s(5)).and(Stopped), Stopped);
        assert_eq!(Stopped.and(Done), Stopped);
        let all = [Done, Later(s(60)), Done, Later(s(2))]
            .into_iter()
            .fold(Done, Answer::and);
        assert_eq!(all, Later(s(2)));
    }
}
