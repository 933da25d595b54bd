//! What an accepted record becomes: its [`Reading`], and the optional fields whose value was
//! there but not understood. Such a value costs the reading nothing (the field is unknown, SPEC
//! section 4); the validator counts it in `heartbeat_ignored_values_total{field}`, so a producer
//! that sends `"activity":"REST"` shows on a dashboard instead of silently losing its context.

use crate::domain::reading::Reading;

/// An optional field of the message whose value can be ignored (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoredField {
    Activity,
    DeviceId,
}

impl IgnoredField {
    pub const ALL: [IgnoredField; 2] = [IgnoredField::Activity, IgnoredField::DeviceId];

    /// The field's name in the message: the `field` label of `heartbeat_ignored_values_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoredField::Activity => "activity",
            IgnoredField::DeviceId => "device_id",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The fields of one message whose value was ignored: a bit set, so the usual empty one costs
/// nothing to make, move or check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IgnoredFields(u8);

impl IgnoredFields {
    pub(super) fn insert(&mut self, field: IgnoredField) {
        self.0 |= field.bit();
    }

    pub fn contains(self, field: IgnoredField) -> bool {
        self.0 & field.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields, in [`IgnoredField::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = IgnoredField> {
        IgnoredField::ALL
            .into_iter()
            .filter(move |field| self.contains(*field))
    }
}

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub reading: Reading,
    /// Optional fields present with a value that is not one of theirs, taken as unknown.
    pub ignored: IgnoredFields,
}
