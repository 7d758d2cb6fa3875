//! The recipient batch aggregate: decisions in `handle`, assignments in
//! `apply`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::BATCH_SIZE;
use super::commands::RecipientBatchCommand;
use super::error::RecipientBatchError;
use super::events::{BatchRecipient, RecipientBatchEvent};
use crate::message::QueuedMessage;
use crate::types::CampaignId;

/// Up to [`BATCH_SIZE`] recipients of a campaign, queued together (by a
/// campaign's fan-out) or admitted one by one (a direct campaign's single
/// sends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecipientBatch {
    campaign_id: Option<CampaignId>,
    index: u32,
    recipients: Vec<BatchRecipient>,
    queued_at: Option<DateTime<Utc>>,
    /// For a batch of admissions: its bounds, and when each recipient was
    /// admitted (in the order of `recipients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admissions: Option<Admissions>,
}

/// The bounds of a batch of admissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Admissions {
    first: u64,
    capacity: u32,
    admitted_at: Vec<DateTime<Utc>>,
}

impl RecipientBatch {
    /// Its campaign; `None` until queued.
    pub fn campaign_id(&self) -> Option<CampaignId> {
        self.campaign_id
    }

    /// Its place in the campaign, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Its recipients, in the contact list's order.
    pub fn recipients(&self) -> &[BatchRecipient] {
        &self.recipients
    }

    /// Each recipient's message as the batch queued (or admitted) it
    /// (empty until then).
    pub fn messages(&self) -> impl Iterator<Item = QueuedMessage> + '_ {
        self.campaign_id.zip(self.queued_at).into_iter().flat_map(
            move |(campaign_id, queued_at)| {
                self.recipients.iter().enumerate().map(move |(i, r)| {
                    let at = self
                        .admissions
                        .as_ref()
                        .and_then(|a| a.admitted_at.get(i).copied())
                        .unwrap_or(queued_at);
                    r.clone().into_queued(campaign_id, at)
                })
            },
        )
    }

    /// For a batch of admissions: the campaign's message number (from 0)
    /// the next batch starts at, and whether this one is full.
    pub fn admission_bounds(&self) -> Option<(u64, bool)> {
        self.admissions.as_ref().map(|a| {
            (
                a.first + u64::from(a.capacity),
                self.recipients.len() >= a.capacity as usize,
            )
        })
    }

    fn decide(
        &self,
        command: RecipientBatchCommand,
    ) -> Result<Vec<RecipientBatchEvent>, RecipientBatchError> {
        match command {
            RecipientBatchCommand::QueueRecipients {
                campaign_id,
                index,
                recipients,
                at,
            } => {
                if self.campaign_id.is_some() {
                    return Err(RecipientBatchError::AlreadyQueued);
                }
                if recipients.is_empty() || recipients.len() > BATCH_SIZE {
                    return Err(RecipientBatchError::Size {
                        max: BATCH_SIZE,
                        got: recipients.len(),
                    });
                }
                let mut seen = HashSet::with_capacity(recipients.len());
                if let Some(repeated) = recipients.iter().find(|r| !seen.insert(r.message_id)) {
                    return Err(RecipientBatchError::Repeated(
                        repeated.message_id.to_string(),
                    ));
                }
                Ok(vec![RecipientBatchEvent::RecipientsQueued {
                    campaign_id,
                    index,
                    recipients,
                    at,
                }])
            }
            RecipientBatchCommand::AdmitRecipient {
                campaign_id,
                index,
                first,
                capacity,
                recipient,
                at,
            } => {
                if !(1..=BATCH_SIZE).contains(&(capacity as usize)) {
                    return Err(RecipientBatchError::Size {
                        max: BATCH_SIZE,
                        got: capacity as usize,
                    });
                }
                if self.campaign_id.is_some() {
                    let Some(admissions) = &self.admissions else {
                        return Err(RecipientBatchError::NotAdmitting);
                    };
                    if self.campaign_id != Some(campaign_id)
                        || self.index != index
                        || admissions.first != first
                    {
                        return Err(RecipientBatchError::NotAdmitting);
                    }
                    if self
                        .recipients
                        .iter()
                        .any(|r| r.message_id == recipient.message_id)
                    {
                        return Ok(vec![]);
                    }
                    // The bounds the batch was opened with hold, whatever
                    // a later caller thought they were.
                    if self.recipients.len() >= admissions.capacity as usize {
                        return Err(RecipientBatchError::Full {
                            capacity: admissions.capacity,
                        });
                    }
                    return Ok(vec![RecipientBatchEvent::RecipientAdmitted {
                        campaign_id,
                        index,
                        first,
                        capacity: admissions.capacity,
                        recipient,
                        at,
                    }]);
                }
                Ok(vec![RecipientBatchEvent::RecipientAdmitted {
                    campaign_id,
                    index,
                    first,
                    capacity,
                    recipient,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for RecipientBatch {
    const TYPE: &'static str = "recipient_batch";
    type Command = RecipientBatchCommand;
    type Event = RecipientBatchEvent;
    type Error = RecipientBatchError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            RecipientBatchEvent::RecipientsQueued {
                campaign_id,
                index,
                recipients,
                at,
            } => {
                self.campaign_id = Some(campaign_id);
                self.index = index;
                self.recipients = recipients;
                self.queued_at = Some(at);
            }
            RecipientBatchEvent::RecipientAdmitted {
                campaign_id,
                index,
                first,
                capacity,
                recipient,
                at,
            } => {
                self.campaign_id = Some(campaign_id);
                self.index = index;
                self.queued_at.get_or_insert(at);
                self.recipients.push(recipient);
                let admissions = self.admissions.get_or_insert_with(|| Admissions {
                    first,
                    capacity,
                    admitted_at: Vec::new(),
                });
                admissions.admitted_at.push(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use std::collections::BTreeMap;

    use super::*;
    use crate::types::phone::{Phone, Region};
    use crate::types::{MessageContent, MessageId, SessionId};

    type Given = TestFramework<RecipientBatch>;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 2, 0, 0).unwrap()
    }

    fn campaign() -> CampaignId {
        CampaignId::from_uuid(Uuid::from_u128(2))
    }

    fn recipient(n: u128) -> BatchRecipient {
        BatchRecipient {
            message_id: MessageId::from_uuid(Uuid::from_u128(100 + n)),
            session_id: SessionId::from_uuid(Uuid::from_u128(10)),
            to: Phone::parse(&format!("0812 3456 {:04}", n), Region::ID)
                .unwrap()
                .into(),
            name: Some(format!("Budi {n}")),
            variables: [("kota".to_owned(), "Bandung".to_owned())].into(),
            content: None,
        }
    }

    fn direct(n: u128) -> BatchRecipient {
        BatchRecipient {
            name: None,
            variables: BTreeMap::new(),
            content: Some(
                MessageContent::new(Some(format!("Pesanan {n} dikirim")), None, None).unwrap(),
            ),
            ..recipient(n)
        }
    }

    fn admit(n: u128, capacity: u32, minute: u32) -> RecipientBatchCommand {
        RecipientBatchCommand::AdmitRecipient {
            campaign_id: campaign(),
            index: 1,
            first: 20,
            capacity,
            recipient: direct(n),
            at: at() + chrono::TimeDelta::minutes(minute.into()),
        }
    }

    fn admitted(n: u128, capacity: u32, minute: u32) -> RecipientBatchEvent {
        RecipientBatchEvent::RecipientAdmitted {
            campaign_id: campaign(),
            index: 1,
            first: 20,
            capacity,
            recipient: direct(n),
            at: at() + chrono::TimeDelta::minutes(minute.into()),
        }
    }

    #[test]
    fn a_batch_admits_single_sends_up_to_the_capacity_it_opened_with() {
        Given::with(())
            .given_no_previous_events()
            .when(admit(1, 2, 0))
            .then_expect_events(vec![admitted(1, 2, 0)]);
        // A later caller's capacity does not widen it.
        Given::with(())
            .given(vec![admitted(1, 2, 0)])
            .when(admit(2, 50, 1))
            .then_expect_events(vec![admitted(2, 2, 1)]);
        Given::with(())
            .given(vec![admitted(1, 2, 0), admitted(2, 2, 1)])
            .when(admit(3, 50, 2))
            .then_expect_error(RecipientBatchError::Full { capacity: 2 });
    }

    #[test]
    fn an_admission_repeated_is_answered_with_no_event() {
        Given::with(())
            .given(vec![admitted(1, 2, 0), admitted(2, 2, 1)])
            .when(admit(1, 2, 5))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_queued_batch_or_other_bounds_admit_nothing() {
        Given::with(())
            .given(vec![queued(vec![recipient(1)])])
            .when(admit(2, 2, 0))
            .then_expect_error(RecipientBatchError::NotAdmitting);
        Given::with(())
            .given(vec![admitted(1, 2, 0)])
            .when(RecipientBatchCommand::AdmitRecipient {
                campaign_id: campaign(),
                index: 1,
                first: 21,
                capacity: 2,
                recipient: direct(2),
                at: at(),
            })
            .then_expect_error(RecipientBatchError::NotAdmitting);
        Given::with(())
            .given_no_previous_events()
            .when(admit(1, 0, 0))
            .then_expect_error(RecipientBatchError::Size {
                max: BATCH_SIZE,
                got: 0,
            });
    }

    #[test]
    fn each_admitted_message_keeps_its_own_time_and_content() {
        let mut batch = RecipientBatch::default();
        assert_eq!(batch.admission_bounds(), None);
        batch.apply(admitted(1, 2, 0));
        assert_eq!(batch.admission_bounds(), Some((22, false)));
        batch.apply(admitted(2, 2, 7));
        assert_eq!(batch.admission_bounds(), Some((22, true)));
        let messages: Vec<QueuedMessage> = batch.messages().collect();
        assert_eq!(messages[1].at, at() + chrono::TimeDelta::minutes(7));
        assert_eq!(
            messages[1].content.as_ref().and_then(|c| c.text.as_deref()),
            Some("Pesanan 2 dikirim")
        );
        assert_eq!(messages[0].at, at());
    }

    fn queue(recipients: Vec<BatchRecipient>) -> RecipientBatchCommand {
        RecipientBatchCommand::QueueRecipients {
            campaign_id: campaign(),
            index: 3,
            recipients,
            at: at(),
        }
    }

    fn queued(recipients: Vec<BatchRecipient>) -> RecipientBatchEvent {
        RecipientBatchEvent::RecipientsQueued {
            campaign_id: campaign(),
            index: 3,
            recipients,
            at: at(),
        }
    }

    #[test]
    fn a_batch_is_queued_once() {
        let recipients = vec![recipient(1), recipient(2)];
        Given::with(())
            .given_no_previous_events()
            .when(queue(recipients.clone()))
            .then_expect_events(vec![queued(recipients.clone())]);
        Given::with(())
            .given(vec![queued(recipients.clone())])
            .when(queue(recipients))
            .then_expect_error(RecipientBatchError::AlreadyQueued);
    }

    #[test]
    fn an_empty_an_oversized_or_a_repeating_batch_is_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(queue(vec![]))
            .then_expect_error(RecipientBatchError::Size {
                max: BATCH_SIZE,
                got: 0,
            });
        let too_many = (0..=BATCH_SIZE as u128).map(recipient).collect();
        Given::with(())
            .given_no_previous_events()
            .when(queue(too_many))
            .then_expect_error(RecipientBatchError::Size {
                max: BATCH_SIZE,
                got: BATCH_SIZE + 1,
            });
        Given::with(())
            .given_no_previous_events()
            .when(queue(vec![recipient(1), recipient(2), recipient(1)]))
            .then_expect_error(RecipientBatchError::Repeated(
                recipient(1).message_id.to_string(),
            ));
    }

    #[test]
    fn each_recipient_becomes_the_message_its_batch_queued() {
        let mut batch = RecipientBatch::default();
        assert_eq!(batch.messages().count(), 0, "nothing before it is queued");
        batch.apply(queued(vec![recipient(1), recipient(2)]));
        let messages: Vec<QueuedMessage> = batch.messages().collect();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].message_id, recipient(2).message_id);
        assert_eq!(messages[1].campaign_id, campaign());
        assert_eq!(messages[1].to, recipient(2).to);
        assert_eq!(messages[1].name.as_deref(), Some("Budi 2"));
        assert_eq!(messages[1].variables["kota"], "Bandung");
        assert_eq!(messages[1].at, at());
        assert_eq!(batch.index(), 3);
    }
}
