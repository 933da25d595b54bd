//! Pure types and decisions: readings, validation, classification, the simulator. No actix,
//! diesel or rdkafka in here; most unit tests live in these files.

pub mod classification;
pub mod detector;
pub mod reading;
pub mod record;
pub mod simulator;
pub mod validation;
