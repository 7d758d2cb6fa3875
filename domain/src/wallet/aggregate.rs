//! The wallet aggregate.
//!
//! Invariants: balance ≥ 0 and available = balance − Σ reservations ≥ 0;
//! a campaign reserves once and settles once; what a settlement captures is
//! `messages_sent ×` [`Points::PER_MESSAGE`] and never more than the
//! campaign reserved; a payment reference is credited once; a suspended
//! tenant sends and reserves nothing; sending stops at the end of the
//! plan's period plus its grace; each notice is given once per period.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{MAX_REASON_CHARS, MAX_REFERENCE_CHARS, WalletCommand, WalletError, WalletEvent};
use crate::plan::PlanTerms;
use crate::types::{CampaignId, Points};

/// A tenant's wallet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    balance: Points,
    reserved: BTreeMap<CampaignId, Points>,
    plan: Option<PlanTerms>,
    plan_expires_at: Option<DateTime<Utc>>,
    plan_expiry_recorded: bool,
    // Grows with campaigns, not messages: what makes Reserve and Settle
    // safe to retry.
    settled: BTreeSet<CampaignId>,
    // Grows with payments: what makes TopUp and Subscribe safe to retry.
    credited: BTreeMap<String, Points>,
    // Why the operator suspended the tenant, while suspended.
    #[serde(default)]
    suspended: Option<String>,
    // The nearest expiry warning given this period (days before its end).
    #[serde(default)]
    warned_days_before: Option<u32>,
    // The renewal reminder of this period was given.
    #[serde(default)]
    renewal_reminded: bool,
    // The low-balance warning was given and the balance is still low.
    #[serde(default)]
    low_balance_warned: bool,
    // Grows with refunds: what makes TakeBack safe to retry, and what a
    // retry answers (taken, owed).
    #[serde(default)]
    taken_back: BTreeMap<String, (Points, Points)>,
    // Points refunds could not take back (they were spent), in all.
    #[serde(default)]
    owed: Points,
}

/// How many days before a plan's period ends its tenant is warned, nearest
/// last.
pub const EXPIRY_WARNING_DAYS: [u32; 2] = [3, 1];

/// The balance is low below this share of the plan's points (a tenth).
pub const LOW_BALANCE_DIVISOR: u64 = 10;

impl Wallet {
    /// All the points the tenant has, reserved or not.
    pub fn balance(&self) -> Points {
        self.balance
    }

    /// The points reserved by running campaigns, in total.
    pub fn reserved(&self) -> Points {
        Points::new(
            self.reserved
                .values()
                .fold(0u64, |sum, points| sum.saturating_add(points.value())),
        )
    }

    /// What a new campaign may reserve: balance − reserved, never negative.
    pub fn available(&self) -> Points {
        self.balance.saturating_sub(self.reserved())
    }

    /// The reservations of running campaigns.
    pub fn reservations(&self) -> &BTreeMap<CampaignId, Points> {
        &self.reserved
    }

    /// What one campaign has reserved, if it has a reservation.
    pub fn reservation(&self, campaign_id: CampaignId) -> Option<Points> {
        self.reserved.get(&campaign_id).copied()
    }

    /// Whether a campaign's reservation was settled.
    pub fn is_settled(&self, campaign_id: CampaignId) -> bool {
        self.settled.contains(&campaign_id)
    }

    /// The terms of the last plan subscribed to (still there once expired).
    pub fn plan(&self) -> Option<&PlanTerms> {
        self.plan.as_ref()
    }

    /// When the plan runs out (ran out, if in the past).
    pub fn plan_expires_at(&self) -> Option<DateTime<Utc>> {
        self.plan_expires_at
    }

    /// When sending stops: the end of the plan's period plus its grace
    /// days (the terms as subscribed). `None` without a plan.
    pub fn sending_until(&self) -> Option<DateTime<Utc>> {
        let plan = self.plan.as_ref()?;
        let expires_at = self.plan_expires_at?;
        Some(
            expires_at
                .checked_add_signed(chrono::TimeDelta::days(i64::from(plan.grace_days)))
                .unwrap_or(expires_at),
        )
    }

    /// Why the operator suspended the tenant, while it is suspended.
    pub fn suspension(&self) -> Option<&str> {
        self.suspended.as_deref()
    }

    /// Below how many available points the balance is low: a tenth of
    /// the plan's points (at least 1); `None` without a plan.
    pub fn low_balance_threshold(&self) -> Option<Points> {
        let plan = self.plan.as_ref()?;
        Some(Points::new(
            (plan.points.value() / LOW_BALANCE_DIVISOR).max(1),
        ))
    }

    /// Whether the tenant may send (campaigns and auto-replies) at `at`:
    /// not suspended, a plan is present and `at` is before
    /// [`Wallet::sending_until`]. Points are checked when a campaign
    /// reserves, not per message.
    /// Points refunds could not take back because they were spent, in all.
    pub fn owed(&self) -> Points {
        self.owed
    }

    /// What the take-back of `reference` took and left owed, once made.
    pub fn taken_back(&self, reference: &str) -> Option<(Points, Points)> {
        self.taken_back.get(reference.trim()).copied()
    }

    /// Whether the tenant may send (campaigns and auto-replies) at `at`: a
    /// plan is present and `at` is before its expiry. Points are checked
    /// when a campaign reserves, not per message.
    pub fn can_send_at(&self, at: DateTime<Utc>) -> Result<(), WalletError> {
        if let Some(reason) = &self.suspended {
            return Err(WalletError::Suspended {
                reason: reason.clone(),
            });
        }
        match self.sending_until() {
            Some(until) if at < until => Ok(()),
            _ => Err(WalletError::PlanExpired {
                expired_at: self.sending_until().or(self.plan_expires_at),
            }),
        }
    }

    /// The notices due at `at` and not given yet (see
    /// [`WalletCommand::Notify`]).
    fn due_notices(&self, at: DateTime<Utc>) -> Vec<WalletEvent> {
        let mut due = Vec::new();
        if let (Some(plan), Some(expires_at), Some(sending_until)) =
            (&self.plan, self.plan_expires_at, self.sending_until())
            && !self.plan_expiry_recorded
        {
            if at < expires_at {
                // Only the nearest warning due: two at once say no more.
                let nearest = EXPIRY_WARNING_DAYS
                    .iter()
                    .copied()
                    .filter(|days| at >= expires_at - chrono::TimeDelta::days(i64::from(*days)))
                    .min();
                if let Some(days_before) = nearest
                    && self.warned_days_before.is_none_or(|w| days_before < w)
                {
                    due.push(WalletEvent::PlanExpiryWarned {
                        plan_id: plan.plan_id,
                        expires_at,
                        sending_until,
                        days_before,
                        at,
                    });
                }
            } else if !self.renewal_reminded {
                due.push(WalletEvent::PlanRenewalDue {
                    plan_id: plan.plan_id,
                    expires_at,
                    sending_until,
                    at,
                });
            }
        }
        if let Some(threshold) = self.low_balance_threshold()
            && !self.low_balance_warned
            && self.available() < threshold
        {
            due.push(WalletEvent::BalanceLowWarned {
                available: self.available(),
                threshold,
                at,
            });
        }
        due
    }

    /// After points move: the low-balance warning may be given again once
    /// the balance is above the threshold.
    fn recheck_low_balance(&mut self) {
        if let Some(threshold) = self.low_balance_threshold()
            && self.available() >= threshold
        {
            self.low_balance_warned = false;
        }
    }

    /// Whether `reference` was credited already: `Ok(true)` for the same
    /// points (a retry), refused for other points.
    fn already_credited(&self, reference: &str, points: Points) -> Result<bool, WalletError> {
        match self.credited.get(reference) {
            None => Ok(false),
            Some(credited) if *credited == points => Ok(true),
            Some(_) => Err(WalletError::ReferenceAlreadyUsed {
                reference: reference.to_string(),
            }),
        }
    }

    /// What every credit by reference (a payment, a grant) must pass: some
    /// points, a valid reference, not credited yet with other points.
    ///
    /// # Returns
    /// The trimmed reference and the balance after, or `None` when this
    /// very credit was made already (a retry: nothing to record).
    fn credit_once(
        &self,
        points: Points,
        reference: &str,
    ) -> Result<Option<(String, Points)>, WalletError> {
        if points == Points::ZERO {
            return Err(WalletError::NoPoints);
        }
        let reference =
            parse_text(reference, MAX_REFERENCE_CHARS).ok_or(WalletError::InvalidReference)?;
        if self.already_credited(&reference, points)? {
            return Ok(None);
        }
        Ok(Some((reference, self.credit(points)?)))
    }

    /// The balance after crediting `points`.
    fn credit(&self, points: Points) -> Result<Points, WalletError> {
        self.balance
            .checked_add(points)
            .ok_or(WalletError::OutOfRange)
    }

    async fn reserve(
        &mut self,
        campaign_id: CampaignId,
        recipients: u64,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        if recipients == 0 {
            return Err(WalletError::NoRecipients);
        }
        let required = Points::for_messages(recipients).ok_or(WalletError::OutOfRange)?;
        // A retry of a reservation made: the answer is the first one's.
        match self.reservation(campaign_id) {
            Some(reserved) if reserved == required => return Ok(()),
            Some(reserved) => {
                return Err(WalletError::AlreadyReserved {
                    campaign_id,
                    reserved,
                });
            }
            None => {}
        }
        if self.is_settled(campaign_id) {
            return Err(WalletError::AlreadySettled { campaign_id });
        }
        self.can_send_at(at)?;
        let available = self.available();
        let Some(available_after) = available.checked_sub(required) else {
            return Err(WalletError::InsufficientPoints {
                required,
                available,
            });
        };
        let event = WalletEvent::PointsReserved {
            campaign_id,
            points: required,
            balance_after: self.balance,
            reserved_after: self.balance.saturating_sub(available_after),
            available_after,
            at,
        };
        sink.write(event, self).await;
        Ok(())
    }

    async fn extend_reservation(
        &mut self,
        campaign_id: CampaignId,
        messages: u64,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        if messages == 0 {
            return Err(WalletError::NoRecipients);
        }
        let required = Points::for_messages(messages).ok_or(WalletError::OutOfRange)?;
        let reserved = self.reservation(campaign_id).unwrap_or(Points::ZERO);
        if reserved >= required {
            return Ok(());
        }
        if self.is_settled(campaign_id) {
            return Err(WalletError::AlreadySettled { campaign_id });
        }
        self.can_send_at(at)?;
        let lacking = required.saturating_sub(reserved);
        let available = self.available();
        let Some(available_after) = available.checked_sub(lacking) else {
            return Err(WalletError::InsufficientPoints {
                required: lacking,
                available,
            });
        };
        let event = WalletEvent::PointsReserved {
            campaign_id,
            points: lacking,
            balance_after: self.balance,
            reserved_after: self.balance.saturating_sub(available_after),
            available_after,
            at,
        };
        sink.write(event, self).await;
        Ok(())
    }

    async fn settle(
        &mut self,
        campaign_id: CampaignId,
        messages_sent: u64,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        if self.is_settled(campaign_id) {
            return Ok(());
        }
        let reserved = self
            .reservation(campaign_id)
            .ok_or(WalletError::NoReservation { campaign_id })?;
        let captured = Points::for_messages(messages_sent)
            .filter(|captured| *captured <= reserved)
            .ok_or(WalletError::SettlementExceedsReservation {
                campaign_id,
                reserved,
                messages_sent,
            })?;
        let released = reserved.saturating_sub(captured);
        // Σ reservations ≤ balance, so neither subtraction below saturates.
        if captured > Points::ZERO {
            let balance_after = self.balance.saturating_sub(captured);
            let reserved_after = self.reserved().saturating_sub(captured);
            let event = WalletEvent::PointsCaptured {
                campaign_id,
                points: captured,
                messages_sent,
                campaign_reserved_after: released,
                balance_after,
                reserved_after,
                available_after: balance_after.saturating_sub(reserved_after),
                at,
            };
            sink.write(event, self).await;
        }
        // The release also ends a reservation of nothing, so every
        // settlement leaves a trace.
        if released > Points::ZERO || captured == Points::ZERO {
            let reserved_after = self.reserved().saturating_sub(released);
            let event = WalletEvent::ReservationReleased {
                campaign_id,
                points: released,
                balance_after: self.balance,
                reserved_after,
                available_after: self.balance.saturating_sub(reserved_after),
                at,
            };
            sink.write(event, self).await;
        }
        Ok(())
    }
}

/// A reference or reason: trimmed, 1 to `max` characters.
fn parse_text(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= max).then(|| text.to_string())
}

impl Aggregate for Wallet {
    const TYPE: &'static str = "wallet";
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            WalletCommand::Subscribe {
                terms,
                reference,
                at,
            } => {
                let reference = parse_text(&reference, MAX_REFERENCE_CHARS)
                    .ok_or(WalletError::InvalidReference)?;
                if self.already_credited(&reference, terms.points)? {
                    return Ok(());
                }
                let balance_after = self.credit(terms.points)?;
                // A renewal while the plan runs extends it; otherwise the
                // new period starts now.
                let starts_at = match self.plan_expires_at {
                    Some(expires_at) if !self.plan_expiry_recorded && expires_at > at => expires_at,
                    _ => at,
                };
                let expires_at = starts_at
                    .checked_add_signed(terms.period_days.duration())
                    .ok_or(WalletError::OutOfRange)?;
                let reserved_after = self.reserved();
                let event = WalletEvent::PlanSubscribed {
                    points: terms.points,
                    terms,
                    expires_at,
                    reference,
                    balance_after,
                    reserved_after,
                    available_after: balance_after.saturating_sub(reserved_after),
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::TopUp {
                points,
                reference,
                at,
            } => {
                let Some((reference, balance_after)) = self.credit_once(points, &reference)? else {
                    return Ok(());
                };
                let reserved_after = self.reserved();
                let event = WalletEvent::PointsToppedUp {
                    points,
                    reference,
                    balance_after,
                    reserved_after,
                    available_after: balance_after.saturating_sub(reserved_after),
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::Grant {
                points,
                by,
                reason,
                reference,
                at,
            } => {
                let Some((reference, balance_after)) = self.credit_once(points, &reference)? else {
                    return Ok(());
                };
                let reason =
                    parse_text(&reason, MAX_REASON_CHARS).ok_or(WalletError::InvalidReason)?;
                let reserved_after = self.reserved();
                let event = WalletEvent::PointsGranted {
                    points,
                    by,
                    reason,
                    reference,
                    balance_after,
                    reserved_after,
                    available_after: balance_after.saturating_sub(reserved_after),
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::Reserve {
                campaign_id,
                recipients,
                at,
            } => self.reserve(campaign_id, recipients, at, sink).await?,
            WalletCommand::ExtendReservation {
                campaign_id,
                messages,
                at,
            } => {
                self.extend_reservation(campaign_id, messages, at, sink)
                    .await?
            }
            WalletCommand::Settle {
                campaign_id,
                messages_sent,
                at,
            } => self.settle(campaign_id, messages_sent, at, sink).await?,
            WalletCommand::CancelReservation { campaign_id, at } => {
                let Some(points) = self.reservation(campaign_id) else {
                    return Ok(());
                };
                let reserved_after = self.reserved().saturating_sub(points);
                let event = WalletEvent::ReservationCancelled {
                    campaign_id,
                    points,
                    balance_after: self.balance,
                    reserved_after,
                    available_after: self.balance.saturating_sub(reserved_after),
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::TakeBack {
                points,
                reference,
                at,
            } => {
                if points == Points::ZERO {
                    return Err(WalletError::NoPoints);
                }
                let reference = parse_text(&reference, MAX_REFERENCE_CHARS)
                    .ok_or(WalletError::InvalidReference)?;
                if self.taken_back.contains_key(&reference) {
                    return Ok(());
                }
                // Reserved points belong to running campaigns: only what is
                // available is taken.
                let available = self.available();
                let taken = points.min(available);
                let owed = points.saturating_sub(taken);
                let balance_after = self.balance.saturating_sub(taken);
                let reserved_after = self.reserved();
                let event = WalletEvent::PointsTakenBack {
                    points,
                    taken,
                    owed,
                    reference,
                    balance_after,
                    reserved_after,
                    available_after: available.saturating_sub(taken),
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::ExpirePlan { at } => {
                let (Some(plan), Some(expires_at)) = (&self.plan, self.plan_expires_at) else {
                    return Err(WalletError::NoPlan);
                };
                if self.plan_expiry_recorded {
                    return Ok(());
                }
                let until = self.sending_until().unwrap_or(expires_at);
                if at < until {
                    return Err(WalletError::PlanStillRunning { retry_at: until });
                }
                let event = WalletEvent::PlanExpired {
                    plan_id: plan.plan_id,
                    expires_at,
                    at,
                };
                sink.write(event, self).await;
            }
            WalletCommand::Suspend { reason, by, at } => {
                let reason =
                    parse_text(&reason, MAX_REASON_CHARS).ok_or(WalletError::InvalidReason)?;
                if self.suspended.is_none() {
                    sink.write(WalletEvent::TenantSuspended { reason, by, at }, self)
                        .await;
                }
            }
            WalletCommand::Reactivate { by, at } => {
                if self.suspended.is_some() {
                    sink.write(WalletEvent::TenantReactivated { by, at }, self)
                        .await;
                }
            }
            WalletCommand::Notify { at } => {
                for event in self.due_notices(at) {
                    sink.write(event, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            WalletEvent::PlanSubscribed {
                terms,
                points,
                expires_at,
                reference,
                balance_after,
                ..
            } => {
                self.plan = Some(terms);
                self.plan_expires_at = Some(expires_at);
                self.plan_expiry_recorded = false;
                self.balance = balance_after;
                self.credited.insert(reference, points);
                self.warned_days_before = None;
                self.renewal_reminded = false;
                self.recheck_low_balance();
            }
            WalletEvent::PointsToppedUp {
                points,
                reference,
                balance_after,
                ..
            }
            | WalletEvent::PointsGranted {
                points,
                reference,
                balance_after,
                ..
            } => {
                self.balance = balance_after;
                self.credited.insert(reference, points);
                self.recheck_low_balance();
            }
            WalletEvent::PointsReserved {
                campaign_id,
                points,
                ..
            } => {
                // A direct campaign reserves block after block.
                let reserved = self.reservation(campaign_id).unwrap_or(Points::ZERO);
                let total = reserved.checked_add(points).unwrap_or(reserved);
                self.reserved.insert(campaign_id, total);
            }
            WalletEvent::PointsCaptured {
                campaign_id,
                campaign_reserved_after,
                balance_after,
                ..
            } => {
                self.balance = balance_after;
                if campaign_reserved_after == Points::ZERO {
                    self.reserved.remove(&campaign_id);
                    self.settled.insert(campaign_id);
                } else {
                    self.reserved.insert(campaign_id, campaign_reserved_after);
                }
            }
            WalletEvent::ReservationReleased { campaign_id, .. } => {
                self.reserved.remove(&campaign_id);
                self.settled.insert(campaign_id);
                self.recheck_low_balance();
            }
            WalletEvent::ReservationCancelled { campaign_id, .. } => {
                self.reserved.remove(&campaign_id);
                self.recheck_low_balance();
            }
            WalletEvent::PlanExpired { .. } => {
                self.plan_expiry_recorded = true;
            }
            WalletEvent::PlanExpiryWarned { days_before, .. } => {
                self.warned_days_before = Some(days_before);
            }
            WalletEvent::PlanRenewalDue { .. } => {
                self.renewal_reminded = true;
            }
            WalletEvent::BalanceLowWarned { .. } => {
                self.low_balance_warned = true;
            }
            WalletEvent::TenantSuspended { reason, .. } => {
                self.suspended = Some(reason);
            }
            WalletEvent::TenantReactivated { .. } => {
                self.suspended = None;
            }
            WalletEvent::PointsTakenBack {
                taken,
                owed,
                reference,
                balance_after,
                ..
            } => {
                self.balance = balance_after;
                self.owed = self.owed.checked_add(owed).unwrap_or(self.owed);
                self.taken_back.insert(reference, (taken, owed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;
    use crate::plan::PlanPeriod;
    use crate::types::{PlanId, UserId};
    use crate::wallet::TransactionKind;

    type WalletTest = TestFramework<Wallet>;

    /// 2026-01-`day` 09:00 UTC.
    fn day(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 9, 0, 0).unwrap()
    }

    fn campaign(n: u128) -> CampaignId {
        CampaignId::from_uuid(Uuid::from_u128(n))
    }

    fn admin() -> UserId {
        UserId::from_uuid(Uuid::from_u128(99))
    }

    fn terms(points: u64, period_days: PlanPeriod) -> PlanTerms {
        PlanTerms {
            plan_id: PlanId::from_uuid(Uuid::from_u128(7)),
            name: "Basic".to_string(),
            period_days,
            points: Points::new(points),
            max_sessions: 1,
            max_recipients_per_campaign: 200,
            max_daily_limit: PlanTerms::default_max_daily_limit(),
            features: crate::plan::PlanFeatures::default(),
            grace_days: 0,
            version: 1,
        }
    }

    /// A 30-day plan of 1,000 points with `grace_days`, subscribed on day 1.
    fn subscribed_with_grace(grace_days: u32) -> WalletEvent {
        let WalletEvent::PlanSubscribed {
            points,
            expires_at,
            reference,
            balance_after,
            reserved_after,
            available_after,
            at,
            ..
        } = subscribed()
        else {
            unreachable!()
        };
        WalletEvent::PlanSubscribed {
            terms: PlanTerms {
                grace_days,
                ..terms(1_000, PlanPeriod::Days30)
            },
            points,
            expires_at,
            reference,
            balance_after,
            reserved_after,
            available_after,
            at,
        }
    }

    #[test]
    fn a_grace_period_lets_sending_go_on_after_the_period_and_delays_the_expiry() {
        let w = wallet(vec![subscribed_with_grace(2)]);
        assert_eq!(w.sending_until(), Some(day(31) + TimeDelta::days(2)));
        assert!(w.can_send_at(day(31) + TimeDelta::days(1)).is_ok());
        assert_eq!(
            w.can_send_at(day(31) + TimeDelta::days(2)),
            Err(WalletError::PlanExpired {
                expired_at: Some(day(31) + TimeDelta::days(2))
            })
        );
        WalletTest::with(())
            .given(vec![subscribed_with_grace(2)])
            .when(WalletCommand::ExpirePlan { at: day(31) })
            .then_expect_error(WalletError::PlanStillRunning {
                retry_at: day(31) + TimeDelta::days(2),
            });
    }

    fn suspended() -> WalletEvent {
        WalletEvent::TenantSuspended {
            reason: "spam complaints".to_string(),
            by: admin(),
            at: day(2),
        }
    }

    #[test]
    fn a_suspended_tenant_reserves_nothing_and_may_not_send() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Suspend {
                reason: "  spam complaints ".to_string(),
                by: admin(),
                at: day(2),
            })
            .then_expect_events(vec![suspended()]);
        let refusal = WalletError::Suspended {
            reason: "spam complaints".to_string(),
        };
        WalletTest::with(())
            .given(vec![subscribed(), suspended()])
            .when(reserve(campaign(1), 10, day(3)))
            .then_expect_error(refusal.clone());
        let w = wallet(vec![subscribed(), suspended()]);
        assert_eq!(w.can_send_at(day(3)), Err(refusal.clone()));
        assert_eq!(refusal.code(), "tenant_suspended");
    }

    #[test]
    fn suspending_twice_or_reactivating_an_active_tenant_records_nothing() {
        WalletTest::with(())
            .given(vec![subscribed(), suspended()])
            .when(WalletCommand::Suspend {
                reason: "again".to_string(),
                by: admin(),
                at: day(3),
            })
            .then_expect_events(vec![]);
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Reactivate {
                by: admin(),
                at: day(3),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_a_suspension_without_a_reason() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Suspend {
                reason: "  ".to_string(),
                by: admin(),
                at: day(3),
            })
            .then_expect_error(WalletError::InvalidReason);
    }

    #[test]
    fn reactivation_restores_sending() {
        let reactivated = WalletEvent::TenantReactivated {
            by: admin(),
            at: day(3),
        };
        WalletTest::with(())
            .given(vec![subscribed(), suspended()])
            .when(WalletCommand::Reactivate {
                by: admin(),
                at: day(3),
            })
            .then_expect_events(vec![reactivated.clone()]);
        let w = wallet(vec![subscribed(), suspended(), reactivated]);
        assert!(w.can_send_at(day(4)).is_ok());
        assert_eq!(w.suspension(), None);
    }

    fn warned(days_before: u32, at: DateTime<Utc>) -> WalletEvent {
        WalletEvent::PlanExpiryWarned {
            plan_id: PlanId::from_uuid(Uuid::from_u128(7)),
            expires_at: day(31),
            sending_until: day(31),
            days_before,
            at,
        }
    }

    #[test]
    fn nothing_is_noticed_early_in_the_period() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Notify { at: day(10) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_expiry_is_warned_three_days_then_one_day_before_each_once() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Notify { at: day(28) })
            .then_expect_events(vec![warned(3, day(28))]);
        WalletTest::with(())
            .given(vec![subscribed(), warned(3, day(28))])
            .when(WalletCommand::Notify { at: day(29) })
            .then_expect_events(vec![]);
        WalletTest::with(())
            .given(vec![subscribed(), warned(3, day(28))])
            .when(WalletCommand::Notify { at: day(30) })
            .then_expect_events(vec![warned(1, day(30))]);
        // Late: only the nearest warning.
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Notify { at: day(30) })
            .then_expect_events(vec![warned(1, day(30))]);
    }

    #[test]
    fn the_renewal_is_reminded_once_at_the_end_of_the_period_in_its_grace() {
        let due = WalletEvent::PlanRenewalDue {
            plan_id: PlanId::from_uuid(Uuid::from_u128(7)),
            expires_at: day(31),
            sending_until: day(31) + TimeDelta::days(2),
            at: day(31),
        };
        WalletTest::with(())
            .given(vec![subscribed_with_grace(2), warned(1, day(30))])
            .when(WalletCommand::Notify { at: day(31) })
            .then_expect_events(vec![due.clone()]);
        WalletTest::with(())
            .given(vec![subscribed_with_grace(2), warned(1, day(30)), due])
            .when(WalletCommand::Notify {
                at: day(31) + TimeDelta::hours(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_low_balance_is_warned_once_until_points_come_back() {
        let mut history = vec![subscribed()];
        // 460 of 500 reservable points: 40 left, below a tenth of 1,000.
        history.push(WalletEvent::PointsReserved {
            campaign_id: campaign(1),
            points: Points::new(960),
            balance_after: Points::new(1_000),
            reserved_after: Points::new(960),
            available_after: Points::new(40),
            at: day(2),
        });
        let low = WalletEvent::BalanceLowWarned {
            available: Points::new(40),
            threshold: Points::new(100),
            at: day(3),
        };
        WalletTest::with(())
            .given(history.clone())
            .when(WalletCommand::Notify { at: day(3) })
            .then_expect_events(vec![low.clone()]);
        history.push(low);
        WalletTest::with(())
            .given(history.clone())
            .when(WalletCommand::Notify { at: day(4) })
            .then_expect_events(vec![]);
        // Topped up above the threshold, then low again: warned again.
        history.push(WalletEvent::PointsToppedUp {
            points: Points::new(500),
            reference: "pay-2".to_string(),
            balance_after: Points::new(1_500),
            reserved_after: Points::new(960),
            available_after: Points::new(540),
            at: day(5),
        });
        assert!(!wallet(history.clone()).low_balance_warned);
    }

    /// A 30-day plan of 1,000 points subscribed on day 1 (runs to day 31).
    fn subscribed() -> WalletEvent {
        WalletEvent::PlanSubscribed {
            terms: terms(1_000, PlanPeriod::Days30),
            points: Points::new(1_000),
            expires_at: day(31),
            reference: "pay-1".to_string(),
            balance_after: Points::new(1_000),
            reserved_after: Points::ZERO,
            available_after: Points::new(1_000),
            at: day(1),
        }
    }

    /// Campaign 1 reserves 400 points (200 recipients) on day 2, after
    /// [`subscribed`].
    fn reserved() -> WalletEvent {
        WalletEvent::PointsReserved {
            campaign_id: campaign(1),
            points: Points::new(400),
            balance_after: Points::new(1_000),
            reserved_after: Points::new(400),
            available_after: Points::new(600),
            at: day(2),
        }
    }

    /// Campaign 1 settles on day 3 having sent 150 messages.
    fn settled_150() -> Vec<WalletEvent> {
        vec![
            WalletEvent::PointsCaptured {
                campaign_id: campaign(1),
                points: Points::new(300),
                messages_sent: 150,
                campaign_reserved_after: Points::new(100),
                balance_after: Points::new(700),
                reserved_after: Points::new(100),
                available_after: Points::new(600),
                at: day(3),
            },
            WalletEvent::ReservationReleased {
                campaign_id: campaign(1),
                points: Points::new(100),
                balance_after: Points::new(700),
                reserved_after: Points::ZERO,
                available_after: Points::new(700),
                at: day(3),
            },
        ]
    }

    fn expired() -> WalletEvent {
        WalletEvent::PlanExpired {
            plan_id: PlanId::from_uuid(Uuid::from_u128(7)),
            expires_at: day(31),
            at: day(31),
        }
    }

    fn subscribe(reference: &str, at: DateTime<Utc>) -> WalletCommand {
        WalletCommand::Subscribe {
            terms: terms(1_000, PlanPeriod::Days30),
            reference: reference.to_string(),
            at,
        }
    }

    fn top_up(points: u64, reference: &str) -> WalletCommand {
        WalletCommand::TopUp {
            points: Points::new(points),
            reference: reference.to_string(),
            at: day(5),
        }
    }

    fn grant(points: u64, reason: &str) -> WalletCommand {
        WalletCommand::Grant {
            points: Points::new(points),
            by: admin(),
            reason: reason.to_string(),
            reference: "grant-1".to_string(),
            at: day(5),
        }
    }

    fn reserve(campaign_id: CampaignId, recipients: u64, at: DateTime<Utc>) -> WalletCommand {
        WalletCommand::Reserve {
            campaign_id,
            recipients,
            at,
        }
    }

    fn settle(campaign_id: CampaignId, messages_sent: u64) -> WalletCommand {
        WalletCommand::Settle {
            campaign_id,
            messages_sent,
            at: day(3),
        }
    }

    fn wallet(events: Vec<WalletEvent>) -> Wallet {
        let mut wallet = Wallet::default();
        for event in events {
            wallet.apply(event);
        }
        wallet
    }

    // Subscriptions

    #[test]
    fn subscribing_allocates_the_plan_points_and_runs_it_for_its_period() {
        WalletTest::with(())
            .given_no_previous_events()
            .when(subscribe(" pay-1 ", day(1)))
            .then_expect_events(vec![subscribed()]);
    }

    #[test]
    fn renewing_a_running_plan_extends_it_from_its_current_expiry() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::Subscribe {
                terms: terms(500, PlanPeriod::Days15),
                reference: "pay-2".to_string(),
                at: day(20),
            })
            .then_expect_events(vec![WalletEvent::PlanSubscribed {
                terms: terms(500, PlanPeriod::Days15),
                points: Points::new(500),
                expires_at: day(31) + TimeDelta::days(15),
                reference: "pay-2".to_string(),
                balance_after: Points::new(1_500),
                reserved_after: Points::ZERO,
                available_after: Points::new(1_500),
                at: day(20),
            }]);
    }

    #[test]
    fn subscribing_after_the_plan_ran_out_starts_a_new_period_now() {
        let now = day(31) + TimeDelta::days(4);
        WalletTest::with(())
            .given(vec![subscribed(), expired()])
            .when(subscribe("pay-2", now))
            .then_expect_events(vec![WalletEvent::PlanSubscribed {
                terms: terms(1_000, PlanPeriod::Days30),
                points: Points::new(1_000),
                expires_at: now + TimeDelta::days(30),
                reference: "pay-2".to_string(),
                balance_after: Points::new(2_000),
                reserved_after: Points::ZERO,
                available_after: Points::new(2_000),
                at: now,
            }]);
    }

    #[test]
    fn subscribing_when_the_expiry_passed_unrecorded_starts_a_new_period_now() {
        let now = day(31) + TimeDelta::hours(1);
        let mut events = WalletTest::with(())
            .given(vec![subscribed()])
            .when(subscribe("pay-2", now))
            .inspect_result()
            .unwrap();
        let Some(WalletEvent::PlanSubscribed { expires_at, .. }) = events.pop() else {
            panic!("expected a subscription");
        };
        assert_eq!(expires_at, now + TimeDelta::days(30));
    }

    #[test]
    fn subscribing_again_with_a_reference_already_credited_records_nothing() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(subscribe("pay-1", day(2)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_a_reference_already_credited_with_other_points() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(top_up(50, "pay-1"))
            .then_expect_error(WalletError::ReferenceAlreadyUsed {
                reference: "pay-1".to_string(),
            });
    }

    #[test]
    fn refuses_a_subscription_without_a_reference() {
        WalletTest::with(())
            .given_no_previous_events()
            .when(subscribe("  ", day(1)))
            .then_expect_error(WalletError::InvalidReference);
    }

    // Take-backs (refunds)

    fn take_back(points: u64, reference: &str) -> WalletCommand {
        WalletCommand::TakeBack {
            points: Points::new(points),
            reference: reference.to_string(),
            at: day(6),
        }
    }

    #[test]
    fn a_take_back_takes_what_is_available_and_records_the_rest_as_owed() {
        // 1,000 points, 400 reserved by a running campaign: 600 available.
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(take_back(1_000, "order:1:refund:1"))
            .then_expect_events(vec![WalletEvent::PointsTakenBack {
                points: Points::new(1_000),
                taken: Points::new(600),
                owed: Points::new(400),
                reference: "order:1:refund:1".to_string(),
                balance_after: Points::new(400),
                reserved_after: Points::new(400),
                available_after: Points::ZERO,
                at: day(6),
            }]);
    }

    #[test]
    fn a_take_back_of_unspent_points_takes_them_all() {
        let events = WalletTest::with(())
            .given(vec![subscribed()])
            .when(take_back(300, "refund-1"))
            .inspect_result()
            .unwrap();
        let wallet = wallet([vec![subscribed()], events.clone()].concat());
        assert_eq!(wallet.balance(), Points::new(700));
        assert_eq!(wallet.owed(), Points::ZERO);
        assert_eq!(
            wallet.taken_back("refund-1"),
            Some((Points::new(300), Points::ZERO))
        );
        assert_eq!(events[0].transaction_kind(), Some(TransactionKind::Refund));
        assert_eq!(events[0].points(), Points::new(300));
    }

    #[test]
    fn a_take_back_repeated_with_its_reference_records_nothing() {
        let taken = WalletEvent::PointsTakenBack {
            points: Points::new(300),
            taken: Points::new(300),
            owed: Points::ZERO,
            reference: "refund-1".to_string(),
            balance_after: Points::new(700),
            reserved_after: Points::ZERO,
            available_after: Points::new(700),
            at: day(6),
        };
        WalletTest::with(())
            .given(vec![subscribed(), taken])
            .when(take_back(300, "refund-1"))
            .then_expect_events(vec![]);
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(take_back(0, "refund-2"))
            .then_expect_error(WalletError::NoPoints);
    }

    // Top-ups and grants

    #[test]
    fn topping_up_adds_points_to_the_balance() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(top_up(250, "pay-2"))
            .then_expect_events(vec![WalletEvent::PointsToppedUp {
                points: Points::new(250),
                reference: "pay-2".to_string(),
                balance_after: Points::new(1_250),
                reserved_after: Points::new(400),
                available_after: Points::new(850),
                at: day(5),
            }]);
    }

    #[test]
    fn topping_up_needs_no_running_plan() {
        WalletTest::with(())
            .given_no_previous_events()
            .when(top_up(10, "pay-1"))
            .then_expect_events(vec![WalletEvent::PointsToppedUp {
                points: Points::new(10),
                reference: "pay-1".to_string(),
                balance_after: Points::new(10),
                reserved_after: Points::ZERO,
                available_after: Points::new(10),
                at: day(5),
            }]);
    }

    #[test]
    fn topping_up_again_with_the_same_payment_records_nothing() {
        WalletTest::with(())
            .given(vec![WalletEvent::PointsToppedUp {
                points: Points::new(10),
                reference: "pay-1".to_string(),
                balance_after: Points::new(10),
                reserved_after: Points::ZERO,
                available_after: Points::new(10),
                at: day(5),
            }])
            .when(top_up(10, "pay-1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_a_top_up_of_no_points() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(top_up(0, "pay-2"))
            .then_expect_error(WalletError::NoPoints);
    }

    #[test]
    fn refuses_a_top_up_with_a_reference_too_long() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(top_up(10, &"r".repeat(MAX_REFERENCE_CHARS + 1)))
            .then_expect_error(WalletError::InvalidReference);
    }

    #[test]
    fn refuses_a_top_up_that_would_overflow_the_balance() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(top_up(u64::MAX, "pay-2"))
            .then_expect_error(WalletError::OutOfRange);
    }

    #[test]
    fn an_admin_grant_adds_points_with_its_reason() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(grant(100, " goodwill "))
            .then_expect_events(vec![WalletEvent::PointsGranted {
                points: Points::new(100),
                by: admin(),
                reason: "goodwill".to_string(),
                reference: "grant-1".to_string(),
                balance_after: Points::new(1_100),
                reserved_after: Points::ZERO,
                available_after: Points::new(1_100),
                at: day(5),
            }]);
    }

    #[test]
    fn refuses_a_grant_of_no_points() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(grant(0, "goodwill"))
            .then_expect_error(WalletError::NoPoints);
    }

    #[test]
    fn refuses_a_grant_without_a_reason() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(grant(100, ""))
            .then_expect_error(WalletError::InvalidReason);
    }

    // Reservations

    #[test]
    fn starting_a_campaign_reserves_two_points_per_recipient() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(reserve(campaign(1), 200, day(2)))
            .then_expect_events(vec![reserved()]);
    }

    #[test]
    fn a_campaign_may_reserve_everything_available() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(reserve(campaign(2), 300, day(2)))
            .then_expect_events(vec![WalletEvent::PointsReserved {
                campaign_id: campaign(2),
                points: Points::new(600),
                balance_after: Points::new(1_000),
                reserved_after: Points::new(1_000),
                available_after: Points::ZERO,
                at: day(2),
            }]);
    }

    #[test]
    fn refuses_to_start_a_campaign_without_enough_points() {
        // 600 available of a 1,000 balance: what others reserved is not
        // available.
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(reserve(campaign(2), 301, day(2)))
            .then_expect_error(WalletError::InsufficientPoints {
                required: Points::new(602),
                available: Points::new(600),
            });
    }

    #[test]
    fn refuses_to_reserve_without_a_plan() {
        WalletTest::with(())
            .given(vec![WalletEvent::PointsToppedUp {
                points: Points::new(10),
                reference: "pay-1".to_string(),
                balance_after: Points::new(10),
                reserved_after: Points::ZERO,
                available_after: Points::new(10),
                at: day(1),
            }])
            .when(reserve(campaign(1), 1, day(2)))
            .then_expect_error(WalletError::PlanExpired { expired_at: None });
    }

    #[test]
    fn refuses_to_reserve_once_the_plan_has_run_out_even_before_its_expiry_is_recorded() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(reserve(campaign(1), 1, day(31)))
            .then_expect_error(WalletError::PlanExpired {
                expired_at: Some(day(31)),
            });
    }

    #[test]
    fn refuses_to_reserve_after_the_plan_expired() {
        WalletTest::with(())
            .given(vec![subscribed(), expired()])
            .when(reserve(campaign(1), 1, day(31) + TimeDelta::days(1)))
            .then_expect_error(WalletError::PlanExpired {
                expired_at: Some(day(31)),
            });
    }

    #[test]
    fn reserving_again_the_same_points_for_the_same_campaign_records_nothing() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(reserve(campaign(1), 200, day(2)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_a_second_different_reservation_for_the_same_campaign() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(reserve(campaign(1), 10, day(2)))
            .then_expect_error(WalletError::AlreadyReserved {
                campaign_id: campaign(1),
                reserved: Points::new(400),
            });
    }

    #[test]
    fn a_grant_repeated_with_the_same_reference_credits_once() {
        WalletTest::with(())
            .given(vec![
                subscribed(),
                WalletEvent::PointsGranted {
                    points: Points::new(100),
                    by: admin(),
                    reason: "goodwill".to_string(),
                    reference: "grant-1".to_string(),
                    balance_after: Points::new(1_100),
                    reserved_after: Points::ZERO,
                    available_after: Points::new(1_100),
                    at: day(5),
                },
            ])
            .when(grant(100, "goodwill"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_cancelled_reservation_gives_the_points_back_and_the_campaign_may_reserve_again() {
        let mut wallet = Wallet::default();
        let run = |wallet: &mut Wallet, command| {
            let sink = EventSink::default();
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(wallet.handle(command, &(), &sink))
        };
        let subscribe = WalletCommand::Subscribe {
            terms: terms(100, PlanPeriod::Days30),
            reference: "s1".into(),
            at: day(1),
        };
        run(&mut wallet, subscribe).unwrap();
        run(
            &mut wallet,
            WalletCommand::Reserve {
                campaign_id: campaign(1),
                recipients: 3,
                at: day(1),
            },
        )
        .unwrap();
        run(
            &mut wallet,
            WalletCommand::CancelReservation {
                campaign_id: campaign(1),
                at: day(1),
            },
        )
        .unwrap();
        // Again: nothing reserved, nothing to do.
        run(
            &mut wallet,
            WalletCommand::CancelReservation {
                campaign_id: campaign(1),
                at: day(1),
            },
        )
        .unwrap();
        assert!(!wallet.is_settled(campaign(1)));
        assert_eq!(wallet.reserved(), Points::ZERO);
        run(
            &mut wallet,
            WalletCommand::Reserve {
                campaign_id: campaign(1),
                recipients: 4,
                at: day(1),
            },
        )
        .unwrap();
        assert_eq!(wallet.reservation(campaign(1)), Some(Points::new(8)));
        assert_eq!(wallet.balance(), Points::new(100));
    }

    #[test]
    fn refuses_to_reserve_for_a_campaign_already_settled() {
        let mut given = vec![subscribed(), reserved()];
        given.extend(settled_150());
        WalletTest::with(())
            .given(given)
            .when(reserve(campaign(1), 200, day(4)))
            .then_expect_error(WalletError::AlreadySettled {
                campaign_id: campaign(1),
            });
    }

    #[test]
    fn refuses_a_reservation_for_no_recipient() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(reserve(campaign(1), 0, day(2)))
            .then_expect_error(WalletError::NoRecipients);
    }

    #[test]
    fn refuses_a_reservation_too_large_to_count() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(reserve(campaign(1), u64::MAX, day(2)))
            .then_expect_error(WalletError::OutOfRange);
    }

    fn extend(messages: u64, at: DateTime<Utc>) -> WalletCommand {
        WalletCommand::ExtendReservation {
            campaign_id: campaign(2),
            messages,
            at,
        }
    }

    fn block(points: u64, reserved_after: u64) -> WalletEvent {
        WalletEvent::PointsReserved {
            campaign_id: campaign(2),
            points: Points::new(points),
            balance_after: Points::new(1_000),
            reserved_after: Points::new(reserved_after),
            available_after: Points::new(1_000 - reserved_after),
            at: day(2),
        }
    }

    #[test]
    fn a_direct_campaign_reserves_block_after_block_and_each_once() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(extend(25, day(2)))
            .then_expect_events(vec![block(50, 50)]);
        WalletTest::with(())
            .given(vec![subscribed(), block(50, 50)])
            .when(extend(25, day(2)))
            .then_expect_events(vec![]);
        WalletTest::with(())
            .given(vec![subscribed(), block(50, 50)])
            .when(extend(40, day(2)))
            .then_expect_events(vec![block(30, 80)]);
        let wallet = wallet(vec![subscribed(), block(50, 50), block(30, 80)]);
        assert_eq!(wallet.reservation(campaign(2)), Some(Points::new(80)));
        // Settled like any campaign: what was sent captured, the rest of
        // every block released.
        WalletTest::with(())
            .given(vec![subscribed(), block(50, 50), block(30, 80)])
            .when(settle_direct(30))
            .then_expect_events(vec![
                WalletEvent::PointsCaptured {
                    campaign_id: campaign(2),
                    points: Points::new(60),
                    messages_sent: 30,
                    campaign_reserved_after: Points::new(20),
                    balance_after: Points::new(940),
                    reserved_after: Points::new(20),
                    available_after: Points::new(920),
                    at: day(3),
                },
                WalletEvent::ReservationReleased {
                    campaign_id: campaign(2),
                    points: Points::new(20),
                    balance_after: Points::new(940),
                    reserved_after: Points::ZERO,
                    available_after: Points::new(940),
                    at: day(3),
                },
            ]);
    }

    fn settle_direct(messages_sent: u64) -> WalletCommand {
        WalletCommand::Settle {
            campaign_id: campaign(2),
            messages_sent,
            at: day(3),
        }
    }

    #[test]
    fn a_block_beyond_the_available_points_or_after_the_plan_is_refused() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(extend(301, day(2)))
            .then_expect_error(WalletError::InsufficientPoints {
                required: Points::new(602),
                available: Points::new(600),
            });
        WalletTest::with(())
            .given(vec![subscribed(), expired()])
            .when(extend(1, day(31)))
            .then_expect_error(WalletError::PlanExpired {
                expired_at: Some(day(31)),
            });
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(extend(0, day(2)))
            .then_expect_error(WalletError::NoRecipients);
    }

    // Settlements

    #[test]
    fn settling_captures_what_was_sent_and_releases_the_rest() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(settle(campaign(1), 150))
            .then_expect_events(settled_150());
    }

    #[test]
    fn settling_a_campaign_that_sent_everything_only_captures() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(settle(campaign(1), 200))
            .then_expect_events(vec![WalletEvent::PointsCaptured {
                campaign_id: campaign(1),
                points: Points::new(400),
                messages_sent: 200,
                campaign_reserved_after: Points::ZERO,
                balance_after: Points::new(600),
                reserved_after: Points::ZERO,
                available_after: Points::new(600),
                at: day(3),
            }]);
    }

    #[test]
    fn settling_a_campaign_that_sent_nothing_only_releases() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(settle(campaign(1), 0))
            .then_expect_events(vec![WalletEvent::ReservationReleased {
                campaign_id: campaign(1),
                points: Points::new(400),
                balance_after: Points::new(1_000),
                reserved_after: Points::ZERO,
                available_after: Points::new(1_000),
                at: day(3),
            }]);
    }

    #[test]
    fn settling_twice_records_nothing() {
        let mut given = vec![subscribed(), reserved()];
        given.extend(settled_150());
        WalletTest::with(())
            .given(given)
            .when(settle(campaign(1), 150))
            .then_expect_events(vec![]);
    }

    #[test]
    fn settling_after_the_plan_expired_still_captures_and_releases() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved(), expired()])
            .when(settle(campaign(1), 150))
            .then_expect_events(settled_150());
    }

    #[test]
    fn refuses_to_settle_a_campaign_without_a_reservation() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(settle(campaign(2), 1))
            .then_expect_error(WalletError::NoReservation {
                campaign_id: campaign(2),
            });
    }

    #[test]
    fn refuses_to_capture_more_than_the_campaign_reserved() {
        WalletTest::with(())
            .given(vec![subscribed(), reserved()])
            .when(settle(campaign(1), 201))
            .then_expect_error(WalletError::SettlementExceedsReservation {
                campaign_id: campaign(1),
                reserved: Points::new(400),
                messages_sent: 201,
            });
    }

    // Expiry

    #[test]
    fn records_the_expiry_of_a_plan_that_ran_out() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::ExpirePlan { at: day(31) })
            .then_expect_events(vec![expired()]);
    }

    #[test]
    fn recording_an_expiry_twice_records_nothing() {
        WalletTest::with(())
            .given(vec![subscribed(), expired()])
            .when(WalletCommand::ExpirePlan {
                at: day(31) + TimeDelta::days(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_expire_a_plan_still_running() {
        WalletTest::with(())
            .given(vec![subscribed()])
            .when(WalletCommand::ExpirePlan { at: day(30) })
            .then_expect_error(WalletError::PlanStillRunning { retry_at: day(31) });
    }

    #[test]
    fn refuses_to_expire_a_plan_renewed_since() {
        let renewed = WalletEvent::PlanSubscribed {
            terms: terms(1_000, PlanPeriod::Days30),
            points: Points::new(1_000),
            expires_at: day(31) + TimeDelta::days(30),
            reference: "pay-2".to_string(),
            balance_after: Points::new(2_000),
            reserved_after: Points::ZERO,
            available_after: Points::new(2_000),
            at: day(20),
        };
        WalletTest::with(())
            .given(vec![subscribed(), renewed])
            .when(WalletCommand::ExpirePlan { at: day(31) })
            .then_expect_error(WalletError::PlanStillRunning {
                retry_at: day(31) + TimeDelta::days(30),
            });
    }

    #[test]
    fn refuses_to_expire_when_there_is_no_plan() {
        WalletTest::with(())
            .given_no_previous_events()
            .when(WalletCommand::ExpirePlan { at: day(31) })
            .then_expect_error(WalletError::NoPlan);
    }

    #[test]
    fn points_stay_after_the_plan_expired_but_sending_stops() {
        let wallet = wallet(vec![subscribed(), reserved(), expired()]);
        assert_eq!(wallet.balance(), Points::new(1_000));
        assert_eq!(wallet.reserved(), Points::new(400));
        assert_eq!(wallet.available(), Points::new(600));
        assert_eq!(
            wallet.can_send_at(day(31)),
            Err(WalletError::PlanExpired {
                expired_at: Some(day(31))
            })
        );
        assert_eq!(
            wallet.plan().map(|t| t.plan_id),
            Some(terms(1, PlanPeriod::Days15).plan_id)
        );
    }

    // Queries

    #[test]
    fn sending_is_allowed_while_the_plan_runs_and_not_from_its_expiry() {
        assert_eq!(
            Wallet::default().can_send_at(day(1)),
            Err(WalletError::PlanExpired { expired_at: None })
        );
        let wallet = wallet(vec![subscribed()]);
        assert_eq!(wallet.can_send_at(day(1)), Ok(()));
        assert_eq!(wallet.can_send_at(day(31) - TimeDelta::seconds(1)), Ok(()));
        assert_eq!(
            wallet.can_send_at(day(31)),
            Err(WalletError::PlanExpired {
                expired_at: Some(day(31))
            })
        );
        assert_eq!(wallet.plan_expires_at(), Some(day(31)));
    }

    #[test]
    fn available_is_the_balance_less_what_campaigns_reserved() {
        let wallet = wallet(vec![subscribed(), reserved()]);
        assert_eq!(wallet.balance(), Points::new(1_000));
        assert_eq!(wallet.reserved(), Points::new(400));
        assert_eq!(wallet.available(), Points::new(600));
        assert_eq!(wallet.reservation(campaign(1)), Some(Points::new(400)));
        assert!(!wallet.is_settled(campaign(1)));
    }

    #[test]
    fn a_wallet_survives_a_snapshot_round_trip() {
        let mut events = vec![subscribed(), reserved()];
        events.extend(settled_150());
        events.push(WalletEvent::PointsReserved {
            campaign_id: campaign(2),
            points: Points::new(20),
            balance_after: Points::new(700),
            reserved_after: Points::new(20),
            available_after: Points::new(680),
            at: day(4),
        });
        let wallet = wallet(events);
        let json = serde_json::to_string(&wallet).unwrap();
        assert_eq!(serde_json::from_str::<Wallet>(&json).unwrap(), wallet);
    }

    #[test]
    fn wallet_events_are_named_after_their_variant_and_kind() {
        let settled = settled_150();
        assert_eq!(subscribed().event_type(), "PlanSubscribed");
        assert_eq!(settled[0].event_type(), "PointsCaptured");
        assert_eq!(settled[1].event_type(), "ReservationReleased");
        assert_eq!(expired().event_version(), "1.0");
        assert_eq!(
            subscribed().transaction_kind(),
            Some(TransactionKind::Allocation)
        );
        let kind = |e: &WalletEvent| e.transaction_kind().map(TransactionKind::as_str);
        assert_eq!(kind(&reserved()), Some("reserve"));
        assert_eq!(kind(&settled[0]), Some("capture"));
        assert_eq!(kind(&settled[1]), Some("release"));
        assert_eq!(kind(&expired()), Some("expire"));
        assert_eq!(
            serde_json::to_string(&TransactionKind::Topup).unwrap(),
            "\"topup\""
        );
    }

    #[test]
    fn wallet_errors_have_their_api_codes() {
        assert_eq!(
            WalletError::InsufficientPoints {
                required: Points::new(2),
                available: Points::ZERO
            }
            .code(),
            "insufficient_points"
        );
        assert_eq!(
            WalletError::PlanExpired { expired_at: None }.code(),
            "plan_expired"
        );
        assert_eq!(WalletError::NoPoints.code(), "validation_failed");
        assert_eq!(
            WalletError::ReferenceAlreadyUsed {
                reference: "x".to_string()
            }
            .code(),
            "conflict"
        );
        assert_eq!(
            WalletError::NoReservation {
                campaign_id: campaign(1)
            }
            .code(),
            "invalid_state"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// One step of a generated history.
        #[derive(Debug, Clone)]
        enum Step {
            Subscribe {
                points: u64,
                days30: bool,
                reference: u8,
            },
            TopUp {
                points: u64,
                reference: u8,
            },
            Grant {
                points: u64,
            },
            Reserve {
                campaign: u8,
                recipients: u64,
            },
            // How much of the reservation was sent, in per mille: over 1000
            // is a (refused) over-report.
            Settle {
                campaign: u8,
                sent_per_mille: u64,
            },
            Expire,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (1u64..5_000, any::<bool>(), 0u8..12).prop_map(|(points, days30, reference)| {
                    Step::Subscribe {
                        points,
                        days30,
                        reference,
                    }
                }),
                (0u64..3_000, 0u8..12)
                    .prop_map(|(points, reference)| Step::TopUp { points, reference }),
                (0u64..3_000).prop_map(|points| Step::Grant { points }),
                (0u8..6, 0u64..5_000).prop_map(|(campaign, recipients)| Step::Reserve {
                    campaign,
                    recipients
                }),
                (0u8..7, 0u64..1_100).prop_map(|(campaign, sent_per_mille)| Step::Settle {
                    campaign,
                    sent_per_mille
                }),
                Just(Step::Expire),
            ]
        }

        fn command(step: &Step, wallet: &Wallet, at: DateTime<Utc>) -> WalletCommand {
            match *step {
                Step::Subscribe {
                    points,
                    days30,
                    reference,
                } => WalletCommand::Subscribe {
                    terms: terms(
                        points,
                        if days30 {
                            PlanPeriod::Days30
                        } else {
                            PlanPeriod::Days15
                        },
                    ),
                    reference: format!("pay-{reference}"),
                    at,
                },
                Step::TopUp { points, reference } => WalletCommand::TopUp {
                    points: Points::new(points),
                    reference: format!("pay-{reference}"),
                    at,
                },
                Step::Grant { points } => WalletCommand::Grant {
                    points: Points::new(points),
                    by: admin(),
                    reason: "test".to_string(),
                    reference: format!(
                        "grant-{}-{}",
                        at.timestamp_micros(),
                        wallet.balance().value()
                    ),
                    at,
                },
                Step::Reserve {
                    campaign: c,
                    recipients,
                } => WalletCommand::Reserve {
                    campaign_id: campaign(u128::from(c)),
                    recipients,
                    at,
                },
                Step::Settle {
                    campaign: c,
                    sent_per_mille,
                } => {
                    let campaign_id = campaign(u128::from(c));
                    let recipients = wallet
                        .reservation(campaign_id)
                        .map_or(0, |points| points.value() / 2);
                    WalletCommand::Settle {
                        campaign_id,
                        messages_sent: recipients * sent_per_mille / 1_000,
                        at,
                    }
                }
                Step::Expire => WalletCommand::ExpirePlan { at },
            }
        }

        fn run(
            wallet: &mut Wallet,
            command: WalletCommand,
        ) -> Result<Vec<WalletEvent>, WalletError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let sink = EventSink::default();
                wallet.handle(command, &(), &sink).await?;
                Ok(sink.collect().await)
            })
        }

        /// The totals an event claims, where it claims them.
        fn totals(event: &WalletEvent) -> Option<(Points, Points, Points)> {
            match *event {
                WalletEvent::PlanSubscribed {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::PointsToppedUp {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::ReservationCancelled {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::PointsGranted {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::PointsReserved {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::PointsCaptured {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::ReservationReleased {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                }
                | WalletEvent::PointsTakenBack {
                    balance_after,
                    reserved_after,
                    available_after,
                    ..
                } => Some((balance_after, reserved_after, available_after)),
                WalletEvent::PlanExpired { .. }
                | WalletEvent::PlanExpiryWarned { .. }
                | WalletEvent::PlanRenewalDue { .. }
                | WalletEvent::BalanceLowWarned { .. }
                | WalletEvent::TenantSuspended { .. }
                | WalletEvent::TenantReactivated { .. } => None,
            }
        }

        proptest! {
            #[test]
            fn the_wallet_never_goes_negative_and_every_point_is_accounted_for(
                steps in prop::collection::vec((step(), 0i64..(6 * 24 * 3600)), 1..60)
            ) {
                let mut wallet = Wallet::default();
                let mut at = day(1);
                let mut history = Vec::new();
                let mut messages_settled = 0u64;

                for (step, seconds) in &steps {
                    at += TimeDelta::seconds(*seconds);
                    let command = command(step, &wallet, at);
                    let before = wallet.clone();
                    match run(&mut wallet, command.clone()) {
                        Ok(events) => {
                            if let (WalletCommand::Settle { messages_sent, .. }, false) =
                                (&command, events.is_empty())
                            {
                                messages_settled += messages_sent;
                            }
                            // Each event's totals are the state's after it.
                            let mut replay = before;
                            for event in &events {
                                replay.apply(event.clone());
                                if let Some((balance, reserved, available)) = totals(event) {
                                    prop_assert_eq!(balance, replay.balance());
                                    prop_assert_eq!(reserved, replay.reserved());
                                    prop_assert_eq!(available, replay.available());
                                }
                            }
                            prop_assert_eq!(&replay, &wallet);
                            history.extend(events);
                        }
                        // A refusal changes nothing.
                        Err(_) => prop_assert_eq!(&before, &wallet),
                    }

                    let reserved = wallet
                        .reservations()
                        .values()
                        .map(|points| points.value())
                        .sum::<u64>();
                    prop_assert!(reserved <= wallet.balance().value());
                    prop_assert_eq!(
                        wallet.available().value(),
                        wallet.balance().value() - reserved
                    );
                }

                let mut credited = 0u64;
                let mut captured = 0u64;
                for event in &history {
                    match event.transaction_kind() {
                        Some(TransactionKind::Allocation | TransactionKind::Topup) => {
                            credited += event.points().value();
                        }
                        Some(TransactionKind::Capture) => captured += event.points().value(),
                        _ => {}
                    }
                }
                prop_assert_eq!(captured, 2 * messages_settled);
                prop_assert_eq!(credited - captured, wallet.balance().value());
                let mut replayed = Wallet::default();
                for event in history {
                    replayed.apply(event);
                }
                prop_assert_eq!(replayed, wallet);
            }
        }
    }
}
