//! The send queue: one JetStream work-queue stream of send commands, one
//! subject per sending session (`<prefix>.send.<tenant>.<session>`).
//!
//! The campaign fan-out puts one [`SendCommand`] per queued message on the
//! subject of the session meant to send it; the engine running that session
//! takes them in order through one durable consumer per session
//! (`send-<session>`) and acknowledges each once its outcome is recorded. The queue says *what to try next*; the message
//! aggregate says *what happened*, so a command delivered twice (a
//! redelivery, a fan-out that resumed after a crash) finds its message past
//! `queued` and is dropped: nothing is sent twice.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js};
use serde::{Deserialize, Serialize};
use wablast_domain::types::{CampaignId, MessageId, SessionId, TenantId};
use wablast_eventstore::{EventStoreError, Prefix};

/// One message to send, as queued for a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCommand {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The campaign.
    pub campaign_id: CampaignId,
    /// The message (its aggregate holds the recipient and the status).
    pub message_id: MessageId,
    /// Where the fan-out queued the message on the log (its first commit's
    /// stream sequence), so that the first delivery of the command reads
    /// the message there instead of searching for its last commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<u64>,
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

    /// Commands a session's consumer hands out before the first is
    /// answered: the one being admitted and the sends under way.
    pub const MAX_TAKEN: usize = 64;

    /// Opens the queue, creating its stream (`<prefix>_SENDS`) if needed.
    pub async fn open(jetstream: &js::Context, prefix: &Prefix) -> Result<Self, EventStoreError> {
        let name = Self::stream_name(prefix);
        jetstream
            .create_or_update_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.send.>")],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                // A fan-out that resumes within this window republishes
                // nothing; after it, the message aggregate drops repeats.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(EventStoreError::nats)?;
        let stream = jetstream
            .get_stream(&name)
            .await
            .map_err(EventStoreError::nats)?;
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

    /// Queues `command` for `session`. The returned future resolves once
    /// the server stored it; queue many before awaiting them.
    pub async fn publish(
        &self,
        session: SessionId,
        command: &SendCommand,
    ) -> Result<PublishAckFuture, EventStoreError> {
        let payload = serde_json::to_vec(command).expect("a send command serializes");
        self.jetstream
            .send_publish(
                self.subject(command.tenant_id, session),
                PublishMessage::build()
                    .payload(payload.into())
                    // Per session: a message moved to another sender is a
                    // new command there.
                    .message_id(format!("{}@{session}", command.message_id)),
            )
            .await
            .map_err(EventStoreError::nats)
    }

    /// The durable name of a session's consumer.
    pub fn consumer_name(session: SessionId) -> String {
        format!("send-{session}")
    }

    /// The session's consumer: its commands in order, at most
    /// [`SendQueue::MAX_TAKEN`] out at a time.
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
                    max_ack_pending: Self::MAX_TAKEN as i64,
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
