//! Restricted senders' new-contact sends: when WhatsApp restricts a sender
//! (a 463 reachout timelock, the capping quota), its governor holds back
//! every message to a new contact until the restriction ends. A campaign
//! with other senders need not wait for it: each such message moves to
//! another sender of its campaign that has room for a new contact now
//! ([`move_new_contact_send`]); with none, it stays and waits, and the
//! restricted sender says why (`sender_restricted`, until when).
//!
//! The move is the send loop's answer to the slot it was refused: the
//! command is published on the other sender's queue before the restricted
//! sender's queue lets go of it, so a crash in between leaves it on both.
//! That is safe: the message aggregate takes a message once (`queued` or a
//! retryable failure → `sending`), so the second command finds it moved on
//! and is dropped, as for every command delivered twice ([`crate::sends`]).

use chrono::{DateTime, Utc};
use tracing::info;
use wablast_domain::campaign::Campaign;
use wablast_domain::governor::GovernorState;
use wablast_domain::types::{SessionId, TenantId};

use crate::capacity::{self, CapacityError, SenderCapacity};
use crate::commands::{Commands, key};
use crate::sends::{SendCommand, SendQueue};

/// What became of a restricted sender's new-contact send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Queued for this other sender of the campaign.
    To(SessionId),
    /// No other sender has room for a new contact now: it waits.
    NoRoom,
}

/// One other sender of the campaign as the choice sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The sender.
    pub session: SessionId,
    /// Whether its number is linked and connected.
    pub ready: bool,
    /// Its capacity now.
    pub capacity: SenderCapacity,
}

impl Candidate {
    /// How many more new contacts it may send to now (0: no room).
    pub fn room(&self) -> u32 {
        if !self.ready || self.capacity.state == GovernorState::Restricted {
            return 0;
        }
        let left = self.capacity.left_today.min(self.capacity.this_hour);
        self.capacity
            .new_contacts_left
            .map_or(left, |contacts| contacts.min(left))
    }
}

/// The sender with the most room for a new contact (the first of equals,
/// in the campaign's order); `None` when none has any.
pub fn pick(candidates: &[Candidate]) -> Option<SessionId> {
    candidates
        .iter()
        .filter(|c| c.room() > 0)
        .fold(None::<&Candidate>, |best, c| match best {
            Some(b) if b.room() >= c.room() => Some(b),
            _ => Some(c),
        })
        .map(|c| c.session)
}

/// The other senders of `campaign` (all but `from`), with their capacity
/// at `now`, in the campaign's order.
pub async fn candidates(
    commands: &Commands,
    tenant: TenantId,
    campaign: &Campaign,
    from: SessionId,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, CapacityError> {
    let mut candidates = Vec::new();
    for &session in campaign.senders().iter().filter(|s| **s != from) {
        let Some(capacity) = capacity::of_sender(commands, tenant, session, now).await? else {
            continue;
        };
        let ready = commands
            .sessions
            .load(&key(tenant, session))
            .await?
            .aggregate
            .is_ready();
        candidates.push(Candidate {
            session,
            ready,
            capacity,
        });
    }
    Ok(candidates)
}

/// Why a send could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// A capacity could not be read.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// The other sender's queue did not take it.
    #[error("the send was not queued for another sender: {0}")]
    Queue(String),
}

/// Moves `command` (a new-contact send that `from`, restricted, was refused
/// a slot for) to the other sender of `campaign` with the most room, if
/// one has any. The caller lets go of its own copy only on
/// [`Moved::To`].
pub async fn move_new_contact_send(
    commands: &Commands,
    queue: &SendQueue,
    campaign: &Campaign,
    from: SessionId,
    command: SendCommand,
    now: DateTime<Utc>,
) -> Result<Moved, MoveError> {
    if campaign.senders().iter().all(|s| *s == from) {
        return Ok(Moved::NoRoom);
    }
    let candidates = candidates(commands, command.tenant_id, campaign, from, now).await?;
    let Some(to) = pick(&candidates) else {
        return Ok(Moved::NoRoom);
    };
    let message = command.message_id;
    queue
        .publish(to, &[command.moved()])
        .await
        .map_err(|err| MoveError::Queue(err.to_string()))?
        .await
        .map_err(|err| MoveError::Queue(err.to_string()))?;
    info!(%message, %from, %to, "a restricted sender's new-contact send moved to another sender");
    Ok(Moved::To(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn candidate(n: u128, ready: bool, left: u32, contacts: Option<u32>) -> Candidate {
        Candidate {
            session: SessionId::from_uuid(Uuid::from_u128(n)),
            ready,
            capacity: SenderCapacity {
                today: 100,
                left_today: left,
                this_hour: left,
                new_contacts_left: contacts,
                grows_at: None,
                state: GovernorState::Normal,
                state_until: None,
                restriction: None,
            },
        }
    }

    #[test]
    fn the_sender_with_most_room_for_a_new_contact_takes_it() {
        let picked = pick(&[
            candidate(1, true, 50, Some(2)),
            candidate(2, true, 10, None),
            candidate(3, true, 80, Some(5)),
        ]);
        assert_eq!(picked, Some(SessionId::from_uuid(Uuid::from_u128(2))));
    }

    #[test]
    fn no_room_when_the_others_are_full_not_ready_or_restricted() {
        let mut restricted = candidate(3, true, 50, None);
        restricted.capacity.state = GovernorState::Restricted;
        let candidates = [
            candidate(1, true, 0, None),
            candidate(2, false, 50, None),
            restricted,
            candidate(4, true, 50, Some(0)),
        ];
        assert!(candidates.iter().all(|c| c.room() == 0));
        assert_eq!(pick(&candidates), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn equals_go_to_the_first_in_the_campaigns_order() {
        let picked = pick(&[candidate(7, true, 10, None), candidate(8, true, 10, None)]);
        assert_eq!(picked, Some(SessionId::from_uuid(Uuid::from_u128(7))));
    }
}
