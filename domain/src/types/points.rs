//! Points: the prepaid currency of sending. Never negative by construction.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of points.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Points(u64);

impl Points {
    /// No points.
    pub const ZERO: Self = Self(0);

    /// What one message to one recipient costs (media costs the same).
    pub const PER_MESSAGE: Self = Self(2);

    /// An amount.
    pub const fn new(points: u64) -> Self {
        Self(points)
    }

    /// The amount as a number.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self − other`, or `None` when it would go below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `self − other`, at least zero.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self × n`, or `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Self> {
        self.0.checked_mul(n).map(Self)
    }

    /// What `messages` messages cost.
    pub fn for_messages(messages: u64) -> Option<Self> {
        Self::PER_MESSAGE.checked_mul(messages)
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} points", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_never_go_below_zero() {
        assert_eq!(Points::new(3).checked_sub(Points::new(4)), None);
        assert_eq!(Points::new(3).saturating_sub(Points::new(4)), Points::ZERO);
        assert_eq!(
            Points::new(4).checked_sub(Points::new(3)),
            Some(Points::new(1))
        );
    }

    #[test]
    fn a_message_costs_two_points() {
        assert_eq!(Points::for_messages(200), Some(Points::new(400)));
        assert_eq!(Points::for_messages(u64::MAX), None);
    }
}
