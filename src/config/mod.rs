//! Configuration: the `Settings` tree of SPEC section 3, loaded in layers and validated.
//!
//! Layers, later wins: `config/default.toml` (compiled in, so the binary runs from anywhere), the
//! user's file (`--config FILE` or env `HEARTBEAT_CONFIG`), then environment variables
//! `HEARTBEAT__<SECTION>__<KEY>`. The default file is also the schema: a key it does not have is
//! unknown, a value whose type differs from the default's is mistyped. Every problem is
//! collected, so `check-config` can list them all at once (the `config` crate alone stops at the
//! first); the caller exits 2 on any.
//!
//! The parts:
//! - `sections`: the tree, one struct per section, each with the rules of its keys (ranges,
//!   choices) beside its fields and a `check` of how its keys go together; `kafka` and
//!   `database` hold those two sections.
//! - `rules`: what a rule is and the one pass that holds the merged tree to every rule; the
//!   shared value types (durations in milliseconds, closed sets of strings as enums).
//! - `load`: the layers, the walk against the schema, the secret files.
//! - `secret`: [`Secret`], which never prints its value, and scrubbing secrets from messages.
//! - `domain`: the settings turned into the domain's types (detector, validation rules, bands,
//!   simulator), each in that one place.
//!
//! Durations are [`std::time::Duration`]s, read from keys that carry their unit (`_ms`). This
//! module imports nothing of the program but the domain.

mod database;
mod domain;
mod kafka;
mod load;
pub(crate) mod rules;
mod secret;
mod sections;
#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

pub use database::{DatabaseSettings, SslMode};
pub use kafka::{
    KafkaSettings, SaslMechanism, SecurityProtocol, TopicSettings, LIBRDKAFKA_MAX_POLL_INTERVAL_MS,
};
pub use rules::{Choices, NumberRange, Rule};
pub use secret::{is_secret_property, percent_encode, scrub_secrets, Secret};
pub use sections::{
    AlertSettings, AlertmanagerSettings, AlertmanagerTarget, BandSettings, DetectorSettings,
    GeneratorSettings, HttpSettings, InjectSettings, LogFormat, LogLevel, LogSettings,
    ProcessorSettings, Settings, ShutdownSettings, StorageSettings, SupervisorSettings,
    ValidationSettings, WriterSettings, YEAR_MS,
};

/// The defaults, with a comment on every key; also the schema that user layers are checked against.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why the configuration cannot be used: every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
        ConfigError {
            problems: vec![problem],
        }
    }
}

/// Every integer key with the range it is held to, inclusive, in the order of
/// `config/default.toml`: the rules of the sections, so the check and the property test that
/// builds everything from random values within the ranges cannot drift apart; a test checks that
/// every integer key of `config/default.toml` is here.
pub fn integer_keys() -> Vec<(String, RangeInclusive<i64>)> {
    rules::keys_of(Settings::SECTIONS, |rule| match rule {
        Rule::Integer(range) => Some(range.clone()),
        _ => None,
    })
}

/// Every number (float) key and what it must be; see [`integer_keys`].
pub fn number_keys() -> Vec<(String, NumberRange)> {
    rules::keys_of(Settings::SECTIONS, |rule| match rule {
        Rule::Number(range) => Some(*range),
        _ => None,
    })
}

/// The environment variable that sets `path` (`kafka.topics.readings` ->
/// `HEARTBEAT__KAFKA__TOPICS__READINGS`).
pub fn env_name(path: &str) -> String {
    format!(
        "{}{}{}",
        load::ENV_PREFIX,
        load::ENV_SEPARATOR,
        path.to_ascii_uppercase().replace('.', load::ENV_SEPARATOR)
    )
}
