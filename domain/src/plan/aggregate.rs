//! The plan aggregate.
//!
//! Invariants: a plan is defined once, with a period of 15 or 30 days, at
//! least 1 point, 1 session and 1 recipient per campaign; a retired plan
//! stays retired and offers no new subscriptions.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{MAX_NAME_CHARS, PlanCommand, PlanError, PlanEvent, PlanTerms};

/// One plan on offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    terms: Option<PlanTerms>,
    price: u64,
    defined_at: Option<DateTime<Utc>>,
    retired_at: Option<DateTime<Utc>>,
}

impl Plan {
    /// The plan's terms, once defined (whether retired or not).
    pub fn terms(&self) -> Option<&PlanTerms> {
        self.terms.as_ref()
    }

    /// The price of one subscription, in the smallest currency unit.
    pub fn price(&self) -> u64 {
        self.price
    }

    /// When the plan was defined.
    pub fn defined_at(&self) -> Option<DateTime<Utc>> {
        self.defined_at
    }

    /// When the plan was retired, if it was.
    pub fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.retired_at
    }

    /// Whether the plan is retired.
    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }

    /// The terms a wallet subscribes with: refused when the plan does not
    /// exist (`not_found`) or is retired (`invalid_state`).
    pub fn subscription_terms(&self) -> Result<PlanTerms, PlanError> {
        let terms = self.terms.as_ref().ok_or(PlanError::NotDefined)?;
        if self.is_retired() {
            return Err(PlanError::Retired {
                plan_id: terms.plan_id,
            });
        }
        Ok(terms.clone())
    }
}

impl Aggregate for Plan {
    const TYPE: &'static str = "plan";
    type Command = PlanCommand;
    type Event = PlanEvent;
    type Error = PlanError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            PlanCommand::DefinePlan {
                plan_id,
                name,
                period_days,
                points,
                max_sessions,
                max_recipients_per_campaign,
                max_daily_limit,
                price,
                at,
            } => {
                if let Some(terms) = &self.terms {
                    return Err(PlanError::AlreadyDefined {
                        plan_id: terms.plan_id,
                    });
                }
                let name = name.trim();
                if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                    return Err(PlanError::InvalidName);
                }
                if points.value() == 0 {
                    return Err(PlanError::NoPoints);
                }
                if max_sessions == 0 {
                    return Err(PlanError::NoSessions);
                }
                if max_recipients_per_campaign == 0 {
                    return Err(PlanError::NoRecipients);
                }
                let event = PlanEvent::PlanDefined {
                    plan_id,
                    name: name.to_string(),
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    at,
                };
                sink.write(event, self).await;
            }
            PlanCommand::RetirePlan { at } => {
                let plan_id = self.terms.as_ref().ok_or(PlanError::NotDefined)?.plan_id;
                // Retiring twice is a retry: nothing more to record.
                if !self.is_retired() {
                    sink.write(PlanEvent::PlanRetired { plan_id, at }, self)
                        .await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PlanEvent::PlanDefined {
                plan_id,
                name,
                period_days,
                points,
                max_sessions,
                max_recipients_per_campaign,
                max_daily_limit,
                price,
                at,
            } => {
                self.terms = Some(PlanTerms {
                    plan_id,
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                });
                self.price = price;
                self.defined_at = Some(at);
            }
            PlanEvent::PlanRetired { at, .. } => {
                self.retired_at = Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;
    use crate::plan::PlanPeriod;
    use crate::types::{DailyLimit, PlanId, Points};

    type PlanTest = TestFramework<Plan>;

    fn plan_id() -> PlanId {
        PlanId::from_uuid(Uuid::from_u128(1))
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn define() -> PlanCommand {
        PlanCommand::DefinePlan {
            plan_id: plan_id(),
            name: "  Basic 30  ".to_string(),
            period_days: PlanPeriod::Days30,
            points: Points::new(1_000),
            max_sessions: 2,
            max_recipients_per_campaign: PlanTerms::DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN,
            max_daily_limit: PlanTerms::default_max_daily_limit(),
            price: 150_000,
            at: at(),
        }
    }

    fn define_with(change: impl FnOnce(&mut PlanCommand)) -> PlanCommand {
        let mut command = define();
        change(&mut command);
        command
    }

    fn defined() -> PlanEvent {
        PlanEvent::PlanDefined {
            plan_id: plan_id(),
            name: "Basic 30".to_string(),
            period_days: PlanPeriod::Days30,
            points: Points::new(1_000),
            max_sessions: 2,
            max_recipients_per_campaign: 200,
            max_daily_limit: DailyLimit::parse(500).unwrap(),
            price: 150_000,
            at: at(),
        }
    }

    fn retired() -> PlanEvent {
        PlanEvent::PlanRetired {
            plan_id: plan_id(),
            at: at(),
        }
    }

    #[test]
    fn defines_a_plan_with_its_name_trimmed() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define())
            .then_expect_events(vec![defined()]);
    }

    #[test]
    fn refuses_to_define_a_plan_twice() {
        PlanTest::with(())
            .given(vec![defined()])
            .when(define())
            .then_expect_error(PlanError::AlreadyDefined { plan_id: plan_id() });
    }

    #[test]
    fn refuses_a_plan_with_a_blank_name() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define_with(|c| {
                if let PlanCommand::DefinePlan { name, .. } = c {
                    *name = "   ".to_string();
                }
            }))
            .then_expect_error(PlanError::InvalidName);
    }

    #[test]
    fn refuses_a_plan_with_a_name_too_long() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define_with(|c| {
                if let PlanCommand::DefinePlan { name, .. } = c {
                    *name = "x".repeat(MAX_NAME_CHARS + 1);
                }
            }))
            .then_expect_error(PlanError::InvalidName);
    }

    #[test]
    fn refuses_a_plan_that_allocates_no_points() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define_with(|c| {
                if let PlanCommand::DefinePlan { points, .. } = c {
                    *points = Points::ZERO;
                }
            }))
            .then_expect_error(PlanError::NoPoints);
    }

    #[test]
    fn refuses_a_plan_that_allows_no_session() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define_with(|c| {
                if let PlanCommand::DefinePlan { max_sessions, .. } = c {
                    *max_sessions = 0;
                }
            }))
            .then_expect_error(PlanError::NoSessions);
    }

    #[test]
    fn refuses_a_plan_that_allows_no_recipient() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(define_with(|c| {
                if let PlanCommand::DefinePlan {
                    max_recipients_per_campaign,
                    ..
                } = c
                {
                    *max_recipients_per_campaign = 0;
                }
            }))
            .then_expect_error(PlanError::NoRecipients);
    }

    #[test]
    fn retires_a_plan() {
        PlanTest::with(())
            .given(vec![defined()])
            .when(PlanCommand::RetirePlan { at: at() })
            .then_expect_events(vec![retired()]);
    }

    #[test]
    fn retiring_a_retired_plan_records_nothing() {
        PlanTest::with(())
            .given(vec![defined(), retired()])
            .when(PlanCommand::RetirePlan { at: at() })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_retire_a_plan_never_defined() {
        PlanTest::with(())
            .given_no_previous_events()
            .when(PlanCommand::RetirePlan { at: at() })
            .then_expect_error(PlanError::NotDefined);
    }

    #[test]
    fn a_defined_plan_offers_its_terms_for_subscription() {
        let mut plan = Plan::default();
        plan.apply(defined());
        let terms = plan.subscription_terms().unwrap();
        assert_eq!(terms.plan_id, plan_id());
        assert_eq!(terms.name, "Basic 30");
        assert_eq!(terms.period_days, PlanPeriod::Days30);
        assert_eq!(terms.points, Points::new(1_000));
        assert_eq!(plan.price(), 150_000);
    }

    #[test]
    fn a_retired_plan_offers_no_new_subscription() {
        let mut plan = Plan::default();
        plan.apply(defined());
        plan.apply(retired());
        assert_eq!(
            plan.subscription_terms(),
            Err(PlanError::Retired { plan_id: plan_id() })
        );
        assert!(plan.terms().is_some());
    }

    #[test]
    fn an_unknown_plan_offers_no_subscription() {
        assert_eq!(
            Plan::default().subscription_terms(),
            Err(PlanError::NotDefined)
        );
    }

    #[test]
    fn plan_errors_have_their_api_codes() {
        assert_eq!(PlanError::NoPoints.code(), "validation_failed");
        assert_eq!(
            PlanError::InvalidPeriod { got: 7 }.code(),
            "validation_failed"
        );
        assert_eq!(
            PlanError::Retired { plan_id: plan_id() }.code(),
            "invalid_state"
        );
        assert_eq!(PlanError::NotDefined.code(), "not_found");
    }

    #[test]
    fn plan_events_are_named_after_their_variant() {
        use cqrs_es::DomainEvent;
        assert_eq!(defined().event_type(), "PlanDefined");
        assert_eq!(retired().event_type(), "PlanRetired");
        assert_eq!(retired().event_version(), "1.0");
    }
}
