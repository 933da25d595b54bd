//! Pure types and decisions: readings, records, validation, classification, the detector's rules
//! and the simulator. Nothing of the rest of the crate (the settings become these types in
//! `config/domain.rs`), and no actix, diesel, rdkafka or tokio: `scripts/check-layers.py` fails
//! the tests otherwise. Most unit tests live here.

pub mod classification;
pub mod delivery;
pub mod detector;
pub mod reading;
pub mod record;
pub mod rfc3339;
pub mod rules;
pub mod simulator;
pub mod validation;
