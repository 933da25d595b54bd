//! The rules of validation that come from configuration, the reasons a record is rejected in
//! the order they are checked, and the rejection itself.

use std::fmt;

/// The limits of SPEC section 4 that come from configuration (`validation.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationRules {
    /// A value longer than this is `too_large`, before anything else is looked at.
    pub max_message_bytes: usize,
    /// How far the reading's timestamp may be ahead of the record's reference time.
    pub max_future_skew_ms: i64,
    /// How many whole days the reading's timestamp may be behind the record's reference time;
    /// 0 = no bound.
    pub max_age_days: u32,
    /// The lowest plausible heart rate, inclusive.
    pub min_heart_rate: i64,
    /// The highest plausible heart rate, inclusive.
    pub max_heart_rate: i64,
}

impl Default for ValidationRules {
    /// The defaults of SPEC section 3.
    fn default() -> Self {
        Self {
            max_message_bytes: 65_536,
            max_future_skew_ms: 300_000,
            max_age_days: 30,
            min_heart_rate: 20,
            max_heart_rate: 250,
        }
    }
}

/// Why a record was rejected, in the order in which the reasons are checked (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    TooLarge,
    InvalidUtf8,
    MalformedJson,
    NotAnObject,
    UnsupportedObservation,
    MissingField,
    WrongType,
    InvalidCustomerId,
    InvalidEventId,
    InvalidTimestamp,
    FutureTimestamp,
    StaleTimestamp,
    ImplausibleHeartRate,
}

impl RejectReason {
    /// Every reason, in the order in which they are checked (and the first one wins).
    pub const ALL: [RejectReason; 13] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::MalformedJson,
        RejectReason::NotAnObject,
        RejectReason::UnsupportedObservation,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::InvalidCustomerId,
        RejectReason::InvalidEventId,
        RejectReason::InvalidTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::StaleTimestamp,
        RejectReason::ImplausibleHeartRate,
    ];

    /// The reason's name as SPEC spells it: the `reason` column, the `error.reason` header and
    /// the `reason` label of `heartbeat_rejects_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::UnsupportedObservation => "unsupported_observation",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidCustomerId => "invalid_customer_id",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::StaleTimestamp => "stale_timestamp",
            RejectReason::ImplausibleHeartRate => "implausible_heart_rate",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that broke a rule: the reason that won and a short, lowercase detail naming the field
/// and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub(super) fn new(reason: RejectReason, detail: String) -> Self {
        Self { reason, detail }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
