//! The heart-rate simulator behind the Generator: a seeded fleet of customers with realistic
//! profiles, a daily rhythm of activities, smooth heart-rate dynamics and sensor noise, plus
//! rare injected anomaly episodes and malformed records, each reading labelled with its ground
//! truth.
//!
//! Owns the customer profiles (resting rate, age and maximum rate, time zone, sleep window,
//! fitness), the virtual clock, the activity schedule, the heart-rate model, the injection of
//! episodes (`bradycardia`, `tachycardia`, `critical_low`, `critical_high`, `deviation` at rest;
//! `spike` and `silent` at any time; rates per customer-hour, lengths in simulated time) and of
//! faults (malformed values, one per reject reason in turn). Each reading of an injected episode
//! names its episode and the alert kinds that episode should page for (sent as the `x-episode`
//! and `x-injected` Kafka headers, see [`injected_header`]); natural readings name neither,
//! whatever their band, and under the alert rules of SPEC section 5 they activate nothing.
//! Accepts a [`SimulatorConfig`]; emits one [`SimRecord`] per [`Simulator::next_record`]. It
//! cannot fail and never panics: configuration values out of range are mapped to the nearest
//! usable one.
//!
//! Pure and deterministic: no wall clock, no thread rng. Simulated time starts at the fixed
//! instant [`SIM_START_UNIX_SECS`] (2026-01-01T00:00:00Z) and advances by the schedule alone, so
//! the same seed and configuration give the same sequence of (customer, heart rate) pairs
//! whenever and however fast the generator runs. Faults come from a separate random stream and
//! take no customer's turn, so the readings are the same whatever `fault_rate` is. The wall-clock
//! `now` handed to `next_record` only goes into fault values.
//!
//! docs/GENERATOR.md explains the model, every parameter, and the sources of the physiological
//! numbers used here.
//!
//! # Parts
//! - `params.rs`: the model's numbers, each with its source.
//! - `types.rs`: what callers see: [`SimulatorConfig`], [`InjectionRates`], [`SimRecord`],
//!   customer ids and the `x-injected` header; the ground-truth contract is on
//!   [`SimRecord::Reading`]. A record's activity is the reading's own
//!   [`Activity`], so the simulator's schedule and the `activity` it sends are one vocabulary.
//!
//! [`Activity`]: crate::domain::reading::Activity
//! - `model.rs`: the [`Simulator`] itself: customers, the schedule, the heart-rate model and the
//!   injected episodes with their labels.
//! - `faults.rs`: malformed values, one per reject reason.
//! - `profile.rs`: [`profile_report`], a summary of a stream for the CLI.
//! - `tests.rs`: the unit and property tests.

mod faults;
mod model;
mod params;
mod profile;
mod types;

pub use model::Simulator;
pub use params::SIM_START_UNIX_SECS;
pub use profile::profile_report;
pub use types::{
    customer_id, customer_number, injected_header, sim_start, InjectionRates, SimRecord,
    SimulatorConfig,
};

#[cfg(test)]
mod tests;
