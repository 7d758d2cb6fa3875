//! The plan aggregate.
//!
//! Invariants: a plan is defined once, with a period of 15 or 30 days, at
//! least 1 point, 1 session and 1 recipient per campaign, a grace period of
//! 0 to [`MAX_GRACE_DAYS`] days; each edit is a new version with the same
//! invariants; a retired plan stays retired, is not edited and offers no
//! new subscriptions; a plan not on sale is not bought by tenants.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{
    MAX_GRACE_DAYS, MAX_NAME_CHARS, PlanChanges, PlanCommand, PlanError, PlanEvent, PlanTerms,
};

/// One plan on offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    terms: Option<PlanTerms>,
    price: u64,
    #[serde(default = "on_sale")]
    on_sale: bool,
    defined_at: Option<DateTime<Utc>>,
    retired_at: Option<DateTime<Utc>>,
}

fn on_sale() -> bool {
    true
}

impl Plan {
    /// The plan's terms (its current version), once defined (whether
    /// retired or not).
    pub fn terms(&self) -> Option<&PlanTerms> {
        self.terms.as_ref()
    }

    /// The price of one subscription, in the smallest currency unit.
    pub fn price(&self) -> u64 {
        self.price
    }

    /// Whether tenants may buy it.
    pub fn is_on_sale(&self) -> bool {
        self.on_sale
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

    /// The terms a wallet subscribes with (an admin's grant): refused when
    /// the plan does not exist (`not_found`) or is retired
    /// (`invalid_state`).
    pub fn subscription_terms(&self) -> Result<PlanTerms, PlanError> {
        let terms = self.terms.as_ref().ok_or(PlanError::NotDefined)?;
        if self.is_retired() {
            return Err(PlanError::Retired {
                plan_id: terms.plan_id,
            });
        }
        Ok(terms.clone())
    }

    /// The terms a tenant buys: as [`Plan::subscription_terms`], and also
    /// refused when the plan is not on sale.
    pub fn purchase_terms(&self) -> Result<PlanTerms, PlanError> {
        let terms = self.subscription_terms()?;
        if !self.on_sale {
            return Err(PlanError::NotOnSale {
                plan_id: terms.plan_id,
            });
        }
        Ok(terms)
    }
}

/// The rules every version of a plan holds to.
fn check(terms: &PlanTerms) -> Result<(), PlanError> {
    if terms.name.is_empty() || terms.name.chars().count() > MAX_NAME_CHARS {
        return Err(PlanError::InvalidName);
    }
    if terms.points.value() == 0 {
        return Err(PlanError::NoPoints);
    }
    if terms.max_sessions == 0 {
        return Err(PlanError::NoSessions);
    }
    if terms.max_recipients_per_campaign == 0 {
        return Err(PlanError::NoRecipients);
    }
    if terms.grace_days > MAX_GRACE_DAYS {
        return Err(PlanError::InvalidGrace);
    }
    Ok(())
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
                features,
                grace_days,
                on_sale,
                at,
            } => {
                if let Some(terms) = &self.terms {
                    return Err(PlanError::AlreadyDefined {
                        plan_id: terms.plan_id,
                    });
                }
                let terms = PlanTerms {
                    plan_id,
                    name: name.trim().to_string(),
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    features,
                    grace_days,
                    version: 1,
                };
                check(&terms)?;
                let event = PlanEvent::PlanDefined {
                    plan_id,
                    name: terms.name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                };
                sink.write(event, self).await;
            }
            PlanCommand::EditPlan { changes, at } => {
                let current = self.terms.as_ref().ok_or(PlanError::NotDefined)?;
                if self.is_retired() {
                    return Err(PlanError::Retired {
                        plan_id: current.plan_id,
                    });
                }
                let PlanChanges {
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                } = changes;
                let next = PlanTerms {
                    plan_id: current.plan_id,
                    name: name.map_or_else(|| current.name.clone(), |n| n.trim().to_string()),
                    period_days: period_days.unwrap_or(current.period_days),
                    points: points.unwrap_or(current.points),
                    max_sessions: max_sessions.unwrap_or(current.max_sessions),
                    max_recipients_per_campaign: max_recipients_per_campaign
                        .unwrap_or(current.max_recipients_per_campaign),
                    max_daily_limit: max_daily_limit.unwrap_or(current.max_daily_limit),
                    features: features.unwrap_or(current.features),
                    grace_days: grace_days.unwrap_or(current.grace_days),
                    version: current.version,
                };
                check(&next)?;
                let price = price.unwrap_or(self.price);
                let on_sale = on_sale.unwrap_or(self.on_sale);
                if next == *current && price == self.price && on_sale == self.on_sale {
                    return Ok(());
                }
                let event = PlanEvent::PlanEdited {
                    plan_id: next.plan_id,
                    version: current.version.saturating_add(1),
                    name: next.name,
                    period_days: next.period_days,
                    points: next.points,
                    max_sessions: next.max_sessions,
                    max_recipients_per_campaign: next.max_recipients_per_campaign,
                    max_daily_limit: next.max_daily_limit,
                    price,
                    features: next.features,
                    grace_days: next.grace_days,
                    on_sale,
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
                features,
                grace_days,
                on_sale,
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
                    features,
                    grace_days,
                    version: 1,
                });
                self.price = price;
                self.on_sale = on_sale;
                self.defined_at = Some(at);
            }
            PlanEvent::PlanEdited {
                plan_id,
                version,
                name,
                period_days,
                points,
                max_sessions,
                max_recipients_per_campaign,
                max_daily_limit,
                price,
                features,
                grace_days,
                on_sale,
                ..
            } => {
                self.terms = Some(PlanTerms {
                    plan_id,
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    features,
                    grace_days,
                    version,
                });
                self.price = price;
                self.on_sale = on_sale;
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
    use crate::plan::{PlanFeatures, PlanPeriod};
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
            features: PlanFeatures::default(),
            grace_days: 0,
            on_sale: true,
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
            features: PlanFeatures::default(),
            grace_days: 0,
            on_sale: true,
            at: at(),
        }
    }

    fn edited(points: u64, on_sale: bool) -> PlanEvent {
        PlanEvent::PlanEdited {
            plan_id: plan_id(),
            version: 2,
            name: "Basic 30".to_string(),
            period_days: PlanPeriod::Days30,
            points: Points::new(points),
            max_sessions: 2,
            max_recipients_per_campaign: 200,
            max_daily_limit: DailyLimit::parse(500).unwrap(),
            price: 150_000,
            features: PlanFeatures {
                webhooks: false,
                ..PlanFeatures::default()
            },
            grace_days: 3,
            on_sale,
            at: at(),
        }
    }

    fn edit(points: u64) -> PlanCommand {
        PlanCommand::EditPlan {
            changes: PlanChanges {
                points: Some(Points::new(points)),
                features: Some(PlanFeatures {
                    webhooks: false,
                    ..PlanFeatures::default()
                }),
                grace_days: Some(3),
                ..PlanChanges::default()
            },
            at: at(),
        }
    }

    #[test]
    fn an_edit_is_a_new_version_with_every_term_as_it_now_stands() {
        PlanTest::with(())
            .given(vec![defined()])
            .when(edit(2_000))
            .then_expect_events(vec![edited(2_000, true)]);
    }

    #[test]
    fn an_edited_plan_offers_its_new_version_to_new_subscriptions() {
        let mut plan = Plan::default();
        plan.apply(defined());
        let before = plan.subscription_terms().unwrap();
        plan.apply(edited(2_000, true));
        let after = plan.subscription_terms().unwrap();
        assert_eq!((before.version, before.points.value()), (1, 1_000));
        assert_eq!((after.version, after.points.value()), (2, 2_000));
        assert_eq!(after.grace_days, 3);
        assert!(!after.features.webhooks);
    }

    #[test]
    fn an_edit_that_changes_nothing_records_nothing() {
        PlanTest::with(())
            .given(vec![defined()])
            .when(PlanCommand::EditPlan {
                changes: PlanChanges {
                    name: Some(" Basic 30 ".to_string()),
                    ..PlanChanges::default()
                },
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_edit_a_retired_plan() {
        PlanTest::with(())
            .given(vec![defined(), retired()])
            .when(edit(2_000))
            .then_expect_error(PlanError::Retired { plan_id: plan_id() });
    }

    #[test]
    fn refuses_an_edit_that_breaks_a_rule() {
        PlanTest::with(())
            .given(vec![defined()])
            .when(edit(0))
            .then_expect_error(PlanError::NoPoints);
        PlanTest::with(())
            .given(vec![defined()])
            .when(PlanCommand::EditPlan {
                changes: PlanChanges {
                    grace_days: Some(MAX_GRACE_DAYS + 1),
                    ..PlanChanges::default()
                },
                at: at(),
            })
            .then_expect_error(PlanError::InvalidGrace);
    }

    #[test]
    fn a_plan_off_sale_is_not_bought_but_may_be_granted() {
        let mut plan = Plan::default();
        plan.apply(defined());
        plan.apply(edited(1_000, false));
        assert_eq!(
            plan.purchase_terms(),
            Err(PlanError::NotOnSale { plan_id: plan_id() })
        );
        assert!(plan.subscription_terms().is_ok());
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
