//! Configuration: the `Settings` tree of SPEC section 3, loaded in layers and validated.
//!
//! Layers, later wins: `config/default.toml` (compiled in, so the binary runs from anywhere), the
//! user's file (`--config FILE` or env `HEARTBEAT_CONFIG`), then environment variables
//! `HEARTBEAT__<SECTION>__<KEY>`. The default file is also the schema: a key it does not have is
//! unknown, a value whose type differs from the default's is mistyped. Every problem is
//! collected, so `check-config` can list them all at once (the `config` crate alone stops at the
//! first); the caller exits 2 on any.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use config::{Config, Environment, File, FileFormat, Value, ValueKind};
use serde::{Deserialize, Serialize, Serializer};

/// The defaults, with a comment on every key; also the schema that user layers are checked against.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override keys (`HEARTBEAT__KAFKA__BROKERS`).
const ENV_PREFIX: &str = "HEARTBEAT";
/// Separator between the prefix, sections and keys in those variables.
const ENV_SEPARATOR: &str = "__";
/// How the `config` crate labels values that came from the environment.
const ENV_ORIGIN: &str = "the environment";

/// Keys that are valid but have no default (so they are absent from `default.toml`).
const OPTIONAL_KEYS: &[(&str, Kind)] = &[("generator.seed", Kind::Integer)];
/// Tables whose keys are free-form (every value a string).
const FREE_FORM_TABLES: &[&str] = &["kafka.librdkafka"];

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

/// What a number (float) key must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumberRange {
    /// 0 to 1, both included.
    Fraction,
    /// Above 0, up to and including the bound.
    PositiveUpTo(f64),
}

impl NumberRange {
    pub fn contains(self, value: f64) -> bool {
        match self {
            NumberRange::Fraction => (0.0..=1.0).contains(&value),
            NumberRange::PositiveUpTo(max) => value > 0.0 && value <= max,
        }
    }

    fn describe(self) -> String {
        match self {
            NumberRange::Fraction => "a fraction from 0 to 1".to_owned(),
            NumberRange::PositiveUpTo(max) => format!("a positive number up to {max}"),
        }
    }
}

/// A value that must never be printed: `Debug`, `Display` and `Serialize` show it redacted.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the one place that needs it (a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with its credentials hidden; for a URL, the password only, so operators still
    /// see which host and database are meant. An empty value (unset) shows as empty.
    pub fn redacted(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        redact_url_password(&self.0).unwrap_or_else(|| "<redacted>".to_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `text` with every non-empty secret of `secrets` replaced by `<redacted>`, the secret's
/// percent-encoded form too (libpq messages may quote a URL): for messages the program does not
/// word itself (libpq, librdkafka, OpenSSL).
pub fn scrub_secrets<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_owned();
    // Longest first, so a URL goes whole before the password inside it.
    let mut secrets: Vec<&str> = secrets.iter().map(AsRef::as_ref).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "<redacted>");
        let encoded = percent_encode(secret);
        if encoded != secret {
            out = out.replace(&encoded, "<redacted>");
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for a URL's user info or
/// query value; libpq decodes it).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn redact_url_password(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Some(url.to_owned());
    };
    let user = userinfo.split(':').next().unwrap_or("");
    // Query parameters may carry a password too (`?password=`): hide the whole query then.
    let tail = if tail.contains("password") {
        tail.split('?').next().unwrap_or("").to_owned() + "?<redacted>"
    } else {
        tail.to_owned()
    };
    Some(format!("{scheme}://{user}:<redacted>@{host}{tail}"))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
    pub generator: GeneratorSettings,
    pub processor: ProcessorSettings,
    pub http: HttpSettings,
    pub validation: ValidationSettings,
    pub detector: DetectorSettings,
    pub writer: WriterSettings,
    pub storage: StorageSettings,
    pub supervisor: SupervisorSettings,
    pub shutdown: ShutdownSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub session_timeout_ms: i64,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl (librdkafka's `security.protocol`).
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, for the sasl_* protocols.
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: Secret,
    pub sasl_password_file: String,
    /// PEM CA bundle the broker's certificate must chain to; empty = the system's store.
    pub ssl_ca_file: String,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    pub ssl_certificate_file: String,
    pub ssl_key_file: String,
    pub ssl_key_password: Secret,
    pub ssl_key_password_file: String,
    /// Whether the broker's certificate must name the host connected to.
    pub ssl_verify_hostname: bool,
    /// Printed with the values of secret properties (passwords, keys) redacted.
    #[serde(serialize_with = "serialize_librdkafka")]
    pub librdkafka: BTreeMap<String, String>,
    pub topics: TopicSettings,
}

/// Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.password`,
/// `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...), whose value is never printed.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "ssl.key.pem",
        "ssl_key.pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn serialize_librdkafka<S: Serializer>(
    map: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = serializer.serialize_map(Some(map.len()))?;
    for (key, value) in map {
        if is_secret_property(key) {
            out.serialize_entry(key, "<redacted>")?;
        } else {
            out.serialize_entry(key, value)?;
        }
    }
    out.end()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub readings: String,
    pub dead_letter: String,
    pub alerts: String,
    pub partitions: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    /// A file holding the URL (a docker secret); read at load, into `url`.
    pub url_file: String,
    /// Replaces the password of `url` when set (so the URL can sit in a plain config file).
    pub password: Secret,
    pub password_file: String,
    /// libpq's sslmode; empty = what the URL (or libpq's default, prefer) says.
    pub sslmode: String,
    /// CA certificate file (PEM) for sslmode verify-ca and verify-full.
    pub sslrootcert: String,
    pub pool_size: i64,
    pub connect_timeout_ms: i64,
}

/// The security protocols of `kafka.security_protocol`.
pub const SECURITY_PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// The SASL mechanisms of `kafka.sasl_mechanism` (librdkafka built with OpenSSL, no GSSAPI).
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// libpq's sslmodes, weakest first.
pub const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl KafkaSettings {
    pub fn uses_tls(&self) -> bool {
        matches!(self.security_protocol.as_str(), "ssl" | "sasl_ssl")
    }

    pub fn uses_sasl(&self) -> bool {
        self.security_protocol.starts_with("sasl_")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSettings {
    pub enabled: bool,
    pub customers: i64,
    pub rate: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    pub fault_rate: f64,
    /// Chance per reading of a customer that an injected episode starts (`generator.inject.*`).
    pub inject: crate::domain::simulator::InjectionRates,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSettings {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    pub max_message_bytes: i64,
    pub max_future_skew_ms: i64,
    pub min_heart_rate: i64,
    pub max_heart_rate: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSettings {
    pub spike_bpm: i64,
    pub spike_window_ms: i64,
    pub warmup_readings: i64,
    pub z_threshold: f64,
    pub min_stddev_bpm: f64,
    pub silence_after_ms: i64,
    pub forget_after_ms: i64,
    pub resolve_after_readings: i64,
    pub checkpoint_interval_ms: i64,
    pub bands: BandSettings,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BandSettings {
    pub critical_low_below: i64,
    pub low_below: i64,
    pub high_above: i64,
    pub critical_high_above: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriterSettings {
    pub batch_size: i64,
    pub flush_interval_ms: i64,
    pub parallelism: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub retention_days: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    pub max_restarts: i64,
    pub restart_window_ms: i64,
    pub backoff_min_ms: i64,
    pub backoff_max_ms: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    pub timeout_ms: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: String,
    pub file: String,
    pub max_size_mb: i64,
    pub max_files: i64,
}

/// librdkafka's default `max.poll.interval.ms`, which `kafka.session_timeout_ms` may not exceed
/// unless the escape hatch raises it.
const LIBRDKAFKA_MAX_POLL_INTERVAL_MS: i64 = 300_000;

/// A year of 365 days in milliseconds: the longest any duration key that is measured back from
/// now may be.
pub const YEAR_MS: i64 = 365 * 24 * 3_600_000;

/// A duration from a validated, non-negative millisecond key.
pub fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Converts a validated, non-negative integer key; out-of-range values were refused by
/// [`Settings::validate`], so the fallback is never used in practice.
pub fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// A chrono span from a millisecond key, saturating at chrono's limits where
/// `TimeDelta::milliseconds` would panic. Validated keys are far inside them.
pub fn time_delta(ms: i64) -> TimeDelta {
    TimeDelta::try_milliseconds(ms).unwrap_or(if ms < 0 {
        TimeDelta::MIN
    } else {
        TimeDelta::MAX
    })
}

/// `at` minus a millisecond key (the "since" of a look-back), saturating at the earliest
/// instant chrono can hold where `at - TimeDelta` would panic: nothing is older than that.
pub fn ms_before(at: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    at.checked_sub_signed(time_delta(ms)).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
}

/// A size key in mebibytes, in bytes, saturating rather than overflowing.
pub fn mebibytes(mb: i64) -> u64 {
    u64::try_from(mb).unwrap_or(0).saturating_mul(1024 * 1024)
}

impl Settings {
    /// Loads the defaults, then `file` (when given), then the environment, and validates the
    /// result. Every problem found is in the error.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Settings::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::one(format!(
                    "config file {}: not found (given with --config or HEARTBEAT_CONFIG)",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(PathBuf::from(path)).format(FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(env)),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::one(format!("cannot read configuration: {e}")))?;

        let schema = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::one(format!("built-in defaults are broken: {e}")))?;

        let mut problems = Vec::new();
        let tree = normalize(&schema.cache, &merged.cache, "", &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let mut settings: Settings = serde_json::from_value(tree)
            .map_err(|e| ConfigError::one(format!("configuration does not fit: {e}")))?;
        let mut problems = settings.read_secret_files();
        if let Err(e) = settings.validate() {
            problems.extend(e.problems);
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Reads every `*_file` secret into its key (`kafka.sasl_password_file` into
    /// `kafka.sasl_password`, ...). Setting both a key and its file is a problem, and so is a
    /// file that cannot be read; problems name the key and the path, never the content.
    fn read_secret_files(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let k = &mut self.kafka;
        let d = &mut self.database;
        let url_is_set = default_database_url().as_deref() != Some(d.url.expose());
        for (key, file, value, is_set) in [
            (
                "kafka.sasl_password",
                &k.sasl_password_file,
                &mut k.sasl_password,
                None,
            ),
            (
                "kafka.ssl_key_password",
                &k.ssl_key_password_file,
                &mut k.ssl_key_password,
                None,
            ),
            ("database.password", &d.password_file, &mut d.password, None),
            // The URL always has a value (the default); only one that differs is "set".
            ("database.url", &d.url_file, &mut d.url, Some(url_is_set)),
        ] {
            if file.is_empty() {
                continue;
            }
            if is_set.unwrap_or(!value.is_empty()) {
                problems.push(format!(
                    "{key}: set both {key} and {key}_file; set only one of them"
                ));
                continue;
            }
            match read_secret_file(file) {
                Ok(secret) => *value = Secret::new(secret),
                Err(e) => problems.push(format!("{key}_file: cannot read {file}: {e}")),
            }
        }
        problems
    }

    /// Every integer key: its name, its value (`None`: an optional key left unset) and the range
    /// [`Settings::validate`] holds it to, inclusive. One table, so the ranges, the check and the
    /// property test that builds everything from random values within them cannot drift apart;
    /// a test checks that every integer key of `config/default.toml` is here.
    pub fn integer_keys(&self) -> Vec<(&'static str, Option<i64>, RangeInclusive<i64>)> {
        let (k, d, g, v) = (
            &self.kafka,
            &self.database,
            &self.generator,
            &self.validation,
        );
        let (det, b, w, s) = (
            &self.detector,
            &self.detector.bands,
            &self.writer,
            &self.supervisor,
        );
        let i32_max = i64::from(i32::MAX);
        #[rustfmt::skip]
        let keys = vec![
            ("kafka.session_timeout_ms", Some(k.session_timeout_ms), 1_000..=3_600_000),
            ("kafka.topics.partitions", Some(k.topics.partitions), 1..=10_000),
            ("database.pool_size", Some(d.pool_size), 1..=100),
            ("database.connect_timeout_ms", Some(d.connect_timeout_ms), 100..=600_000),
            ("generator.customers", Some(g.customers), 1..=10_000_000),
            ("generator.rate", Some(g.rate), 0..=10_000_000),
            ("generator.seed", g.seed, 0..=i64::MAX),
            ("validation.max_message_bytes", Some(v.max_message_bytes), 1..=100 * 1024 * 1024),
            ("validation.max_future_skew_ms", Some(v.max_future_skew_ms), 0..=i32_max),
            ("validation.min_heart_rate", Some(v.min_heart_rate), 0..=32_767),
            ("validation.max_heart_rate", Some(v.max_heart_rate), 0..=32_767),
            ("detector.spike_bpm", Some(det.spike_bpm), 1..=1_000),
            ("detector.spike_window_ms", Some(det.spike_window_ms), 1..=i32_max),
            ("detector.warmup_readings", Some(det.warmup_readings), 0..=1_000_000),
            ("detector.silence_after_ms", Some(det.silence_after_ms), 1..=i32_max),
            // A year: "now minus this" must stay a date (it bounds which saved states load).
            ("detector.forget_after_ms", Some(det.forget_after_ms), 1..=YEAR_MS),
            ("detector.resolve_after_readings", Some(det.resolve_after_readings), 1..=1_000_000),
            ("detector.checkpoint_interval_ms", Some(det.checkpoint_interval_ms), 0..=600_000),
            // bpm, compared with heart rates, which are smallints.
            ("detector.bands.critical_low_below", Some(b.critical_low_below), 0..=32_767),
            ("detector.bands.low_below", Some(b.low_below), 0..=32_767),
            ("detector.bands.high_above", Some(b.high_above), 0..=32_767),
            ("detector.bands.critical_high_above", Some(b.critical_high_above), 0..=32_767),
            ("writer.batch_size", Some(w.batch_size), 1..=100_000),
            ("writer.flush_interval_ms", Some(w.flush_interval_ms), 1..=60_000),
            ("writer.parallelism", Some(w.parallelism), 1..=16),
            ("storage.retention_days", Some(self.storage.retention_days), 0..=1_000_000),
            ("supervisor.max_restarts", Some(s.max_restarts), 0..=1_000_000),
            ("supervisor.restart_window_ms", Some(s.restart_window_ms), 1..=i32_max),
            ("supervisor.backoff_min_ms", Some(s.backoff_min_ms), 0..=3_600_000),
            ("supervisor.backoff_max_ms", Some(s.backoff_max_ms), 0..=3_600_000),
            ("shutdown.timeout_ms", Some(self.shutdown.timeout_ms), 0..=3_600_000),
            ("log.max_size_mb", Some(self.log.max_size_mb), 1..=1_000_000),
            ("log.max_files", Some(self.log.max_files), 1..=1_000),
        ];
        keys
    }

    /// Every number (float) key, its value and what it must be; see [`Settings::integer_keys`].
    pub fn number_keys(&self) -> Vec<(&'static str, f64, NumberRange)> {
        let (g, i, d) = (&self.generator, &self.generator.inject, &self.detector);
        use NumberRange::{Fraction, PositiveUpTo};
        vec![
            ("generator.fault_rate", g.fault_rate, Fraction),
            ("generator.inject.bradycardia", i.bradycardia, Fraction),
            ("generator.inject.tachycardia", i.tachycardia, Fraction),
            ("generator.inject.critical_low", i.critical_low, Fraction),
            ("generator.inject.critical_high", i.critical_high, Fraction),
            ("generator.inject.spike", i.spike, Fraction),
            ("generator.inject.deviation", i.deviation, Fraction),
            ("generator.inject.silent", i.silent, Fraction),
            // Standard deviations; a hundred is far past any useful threshold (the default is 4).
            ("detector.z_threshold", d.z_threshold, PositiveUpTo(100.0)),
            // bpm; a thousand is wider than any plausible range of heart rates.
            (
                "detector.min_stddev_bpm",
                d.min_stddev_bpm,
                PositiveUpTo(1_000.0),
            ),
        ]
    }

    /// Checks the values' meaning (ranges, formats, orderings); every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        for (key, value, range) in self.integer_keys() {
            match value {
                Some(value) if !range.contains(&value) => p.push(format!(
                    "{key}: {value} is out of range {}..={}",
                    range.start(),
                    range.end()
                )),
                _ => {}
            }
        }
        self.validate_session_timeout(&mut p);
        let s = &self.supervisor;
        if s.backoff_min_ms > s.backoff_max_ms {
            p.push(format!(
                "supervisor.backoff_min_ms: {} is above supervisor.backoff_max_ms {}",
                s.backoff_min_ms, s.backoff_max_ms
            ));
        }

        for (key, value, range) in self.number_keys() {
            if !range.contains(value) {
                p.push(format!("{key}: {value} must be {}", range.describe()));
            }
        }
        if self.validation.min_heart_rate > self.validation.max_heart_rate {
            p.push(format!(
                "validation.min_heart_rate: {} is above validation.max_heart_rate {}",
                self.validation.min_heart_rate, self.validation.max_heart_rate
            ));
        }
        let b = &self.detector.bands;
        if !(b.critical_low_below <= b.low_below
            && b.low_below <= b.high_above
            && b.high_above <= b.critical_high_above)
        {
            p.push(format!(
                "detector.bands: need critical_low_below <= low_below <= high_above <= \
                 critical_high_above, got {} {} {} {}",
                b.critical_low_below, b.low_below, b.high_above, b.critical_high_above
            ));
        }
        if self
            .kafka
            .brokers
            .split(',')
            .any(|b| !is_host_port(b.trim()))
        {
            p.push(format!(
                "kafka.brokers: {:?} must be comma-separated host:port pairs",
                self.kafka.brokers
            ));
        }
        if self.kafka.group_id.trim().is_empty() {
            p.push("kafka.group_id: must not be empty".to_owned());
        }
        for (key, topic) in [
            ("kafka.topics.readings", &self.kafka.topics.readings),
            ("kafka.topics.dead_letter", &self.kafka.topics.dead_letter),
            ("kafka.topics.alerts", &self.kafka.topics.alerts),
        ] {
            if !is_topic_name(topic) {
                p.push(format!(
                    "{key}: {topic:?} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)"
                ));
            }
        }
        let url = self.database.url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.push(format!(
                "database.url: {} must start with postgres:// or postgresql://",
                self.database.url
            ));
        }
        self.validate_security(&mut p);
        if !is_host_port(&self.http.bind) {
            p.push(format!("http.bind: {:?} must be host:port", self.http.bind));
        }
        if ![
            "trace", "debug", "info", "warning", "warn", "error", "critical",
        ]
        .contains(&self.log.level.as_str())
        {
            p.push(format!(
                "log.level: {:?} must be one of trace, debug, info, warning, error, critical",
                self.log.level
            ));
        }
        if !["term", "json"].contains(&self.log.format.as_str()) {
            p.push(format!(
                "log.format: {:?} must be term or json",
                self.log.format
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: p })
        }
    }

    /// The consumer's session against its poll interval: librdkafka builds no consumer whose
    /// `session.timeout.ms` is above its `max.poll.interval.ms`, so a start would fail again and
    /// again. Either may come from the escape hatch, which is applied last.
    fn validate_session_timeout(&self, p: &mut Vec<String>) {
        let k = &self.kafka;
        let hatch = |property: &str| {
            k.librdkafka
                .get(property)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let (session_key, session) = match hatch("session.timeout.ms") {
            Some(ms) => ("kafka.librdkafka.\"session.timeout.ms\"", ms),
            None => ("kafka.session_timeout_ms", k.session_timeout_ms),
        };
        let poll = hatch("max.poll.interval.ms").unwrap_or(LIBRDKAFKA_MAX_POLL_INTERVAL_MS);
        if session > poll {
            p.push(format!(
                "{session_key}: {session} is above librdkafka's max.poll.interval.ms {poll}, and \
                 librdkafka builds no consumer then; lower it, or raise \
                 kafka.librdkafka.\"max.poll.interval.ms\""
            ));
        }
    }

    /// The TLS, SASL and credential keys of `kafka` and `database`.
    fn validate_security(&self, p: &mut Vec<String>) {
        let k = &self.kafka;
        if !SECURITY_PROTOCOLS.contains(&k.security_protocol.as_str()) {
            p.push(format!(
                "kafka.security_protocol: {:?} must be one of {}",
                k.security_protocol,
                SECURITY_PROTOCOLS.join(", ")
            ));
        }
        if k.uses_sasl() {
            if !SASL_MECHANISMS.contains(&k.sasl_mechanism.as_str()) {
                p.push(format!(
                    "kafka.sasl_mechanism: {:?} must be one of {}",
                    k.sasl_mechanism,
                    SASL_MECHANISMS.join(", ")
                ));
            }
            if k.sasl_username.is_empty() {
                p.push(format!(
                    "kafka.sasl_username: must be set with kafka.security_protocol = {:?}",
                    k.security_protocol
                ));
            }
            if k.sasl_password.is_empty() {
                p.push(format!(
                    "kafka.sasl_password: must be set (or kafka.sasl_password_file) with \
                     kafka.security_protocol = {:?}",
                    k.security_protocol
                ));
            }
        } else if !k.sasl_username.is_empty() || !k.sasl_password.is_empty() {
            p.push(format!(
                "kafka.sasl_username: SASL credentials are set but kafka.security_protocol is \
                 {:?}: use sasl_ssl (or sasl_plaintext)",
                k.security_protocol
            ));
        }
        let tls_keys = [
            ("kafka.ssl_ca_file", &k.ssl_ca_file),
            ("kafka.ssl_certificate_file", &k.ssl_certificate_file),
            ("kafka.ssl_key_file", &k.ssl_key_file),
        ];
        for (key, path) in tls_keys {
            check_readable_file(key, path, p);
            if !path.is_empty()
                && !k.uses_tls()
                && SECURITY_PROTOCOLS.contains(&k.security_protocol.as_str())
            {
                p.push(format!(
                    "{key}: set but kafka.security_protocol is {:?}: use ssl or sasl_ssl",
                    k.security_protocol
                ));
            }
        }
        if k.ssl_certificate_file.is_empty() != k.ssl_key_file.is_empty() {
            p.push(
                "kafka.ssl_certificate_file: the client certificate and kafka.ssl_key_file \
                 go together; set both or neither"
                    .to_owned(),
            );
        }
        if !k.ssl_key_password.is_empty() && k.ssl_key_file.is_empty() {
            p.push("kafka.ssl_key_password: set without kafka.ssl_key_file".to_owned());
        }

        let d = &self.database;
        if !d.sslmode.is_empty() && !SSLMODES.contains(&d.sslmode.as_str()) {
            p.push(format!(
                "database.sslmode: {:?} must be one of {} (or empty: the URL's or libpq's default)",
                d.sslmode,
                SSLMODES.join(", ")
            ));
        }
        check_readable_file("database.sslrootcert", &d.sslrootcert, p);
        let query = d.url.expose().split_once('?').map(|(_, q)| q).unwrap_or("");
        for (key, value) in [("sslmode", &d.sslmode), ("sslrootcert", &d.sslrootcert)] {
            let in_url = query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(key));
            if !value.is_empty() && in_url {
                p.push(format!(
                    "database.{key}: also given in database.url (?{key}=); set it in one place"
                ));
            }
        }
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }
}

/// The content of a secret file, without the line break editors and `echo` leave at its end.
/// The error says why it cannot be read (never what it holds).
fn read_secret_file(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err("it is empty".to_owned());
    }
    Ok(text)
}

/// `database.url` of the built-in defaults.
fn default_database_url() -> Option<String> {
    let defaults: toml::Value = toml::from_str(DEFAULT_TOML).ok()?;
    Some(defaults.get("database")?.get("url")?.as_str()?.to_owned())
}

/// A problem when `path` (the value of `key`) is set but is not a readable file.
fn check_readable_file(key: &str, path: &str, p: &mut Vec<String>) {
    if path.is_empty() {
        return;
    }
    if let Err(e) = std::fs::File::open(path) {
        p.push(format!("{key}: cannot read {path}: {e}"));
    } else if !Path::new(path).is_file() {
        p.push(format!("{key}: {path} is not a file"));
    }
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

fn is_topic_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The type a key must have, as the default file (or [`OPTIONAL_KEYS`]) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Integer,
    Float,
    String,
    Table,
}

impl Kind {
    fn of(value: &ValueKind) -> Option<Kind> {
        Some(match value {
            ValueKind::Boolean(_) => Kind::Boolean,
            ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
                Kind::Integer
            }
            ValueKind::Float(_) => Kind::Float,
            ValueKind::String(_) => Kind::String,
            ValueKind::Table(_) => Kind::Table,
            ValueKind::Nil | ValueKind::Array(_) => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "a boolean",
            Kind::Integer => "an integer",
            Kind::Float => "a number",
            Kind::String => "a string",
            Kind::Table => "a table",
        }
    }
}

fn describe(value: &ValueKind) -> String {
    match value {
        ValueKind::Nil => "nothing".to_owned(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            format!("integer {value}")
        }
        ValueKind::Float(f) => format!("number {f}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".to_owned(),
        ValueKind::Array(_) => "an array".to_owned(),
    }
}

/// Walks the merged tree against the schema (the defaults), collecting unknown keys and
/// mistyped values, and returns the tree as JSON with every value in its schema type. Values
/// from the environment are text, so they are parsed into the type the key needs.
fn normalize(
    schema: &Value,
    value: &Value,
    path: &str,
    problems: &mut Vec<String>,
) -> serde_json::Value {
    match (&schema.kind, &value.kind) {
        (ValueKind::Table(schema_table), ValueKind::Table(table)) => {
            let free_form = FREE_FORM_TABLES.contains(&path);
            let mut out = serde_json::Map::new();
            for (key, child) in table {
                let child_path = join(path, key);
                if free_form {
                    out.insert(key.clone(), scalar_as_string(child, &child_path, problems));
                    continue;
                }
                match schema_table.get(key) {
                    Some(child_schema) => {
                        out.insert(
                            key.clone(),
                            normalize(child_schema, child, &child_path, problems),
                        );
                    }
                    None => match OPTIONAL_KEYS.iter().find(|(k, _)| *k == child_path) {
                        Some((_, kind)) => {
                            let v = coerce(*kind, child, &child_path, problems);
                            out.insert(key.clone(), v);
                        }
                        None => problems.push(format!("{child_path}: unknown key")),
                    },
                }
            }
            serde_json::Value::Object(out)
        }
        (schema_kind, _) => match Kind::of(schema_kind) {
            Some(kind) => coerce(kind, value, path, problems),
            None => serde_json::Value::Null,
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// One value in the type `kind`; text from the environment is parsed, anything else must
/// already have that type (an integer is accepted where a number is wanted).
fn coerce(kind: Kind, value: &Value, path: &str, problems: &mut Vec<String>) -> serde_json::Value {
    let from_env = value.origin() == Some(ENV_ORIGIN);
    let wrong = |problems: &mut Vec<String>| {
        let source = if from_env {
            format!(" (from env {})", env_name(path))
        } else {
            String::new()
        };
        problems.push(format!(
            "{path}: expected {}, got {}{source}",
            kind.name(),
            describe(&value.kind)
        ));
        serde_json::Value::Null
    };
    match (kind, &value.kind) {
        (Kind::Boolean, ValueKind::Boolean(b)) => serde_json::Value::Bool(*b),
        (Kind::Integer, ValueKind::I64(n)) => serde_json::Value::from(*n),
        (Kind::Integer, ValueKind::U64(n)) => match i64::try_from(*n) {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => wrong(problems),
        },
        (Kind::Float, ValueKind::Float(f)) => serde_json::Value::from(*f),
        (Kind::Float, ValueKind::I64(n)) => serde_json::Value::from(*n as f64),
        (Kind::String, ValueKind::String(s)) => serde_json::Value::String(s.clone()),
        (Kind::Table, ValueKind::Table(_)) => serde_json::Value::Object(Default::default()),
        (_, ValueKind::String(s)) if from_env => {
            let parsed = match kind {
                Kind::Boolean => match s.to_ascii_lowercase().as_str() {
                    "true" => Some(serde_json::Value::Bool(true)),
                    "false" => Some(serde_json::Value::Bool(false)),
                    _ => None,
                },
                Kind::Integer => s.trim().parse::<i64>().ok().map(serde_json::Value::from),
                Kind::Float => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(serde_json::Value::from),
                Kind::String | Kind::Table => None,
            };
            parsed.unwrap_or_else(|| wrong(problems))
        }
        _ => wrong(problems),
    }
}

fn scalar_as_string(value: &Value, path: &str, problems: &mut Vec<String>) -> serde_json::Value {
    match &value.kind {
        ValueKind::String(s) => serde_json::Value::String(s.clone()),
        ValueKind::Boolean(_)
        | ValueKind::I64(_)
        | ValueKind::I128(_)
        | ValueKind::U64(_)
        | ValueKind::U128(_)
        | ValueKind::Float(_) => serde_json::Value::String(value.kind.to_string()),
        other => {
            problems.push(format!(
                "{path}: expected a string, got {}",
                describe(other)
            ));
            serde_json::Value::Null
        }
    }
}

/// The environment variable that sets `path` (`kafka.topics.readings` ->
/// `HEARTBEAT__KAFKA__TOPICS__READINGS`).
pub fn env_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        path.to_ascii_uppercase().replace('.', ENV_SEPARATOR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_toml(text: &str) -> Result<Settings, ConfigError> {
        load_with(text, vec![])
    }

    fn load_with(text: &str, env: Vec<(&str, &str)>) -> Result<Settings, ConfigError> {
        let mut file = tempfile_in_target();
        file.1.write_all(text.as_bytes()).unwrap();
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned()));
        let result = Settings::load_from(Some(&file.0), env);
        let _ = std::fs::remove_file(&file.0);
        result
    }

    fn tempfile_in_target() -> (PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("hb-config-{}.toml", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }

    #[test]
    fn defaults_load_and_match_the_spec() {
        let s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
        assert_eq!(s.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(s.kafka.group_id, "heartbeat-processor");
        assert_eq!(s.kafka.session_timeout_ms, 10000);
        assert_eq!(s.kafka.topics.readings, "heartbeats");
        assert_eq!(s.kafka.topics.dead_letter, "heartbeats-dlq");
        assert_eq!(s.kafka.topics.alerts, "heartbeat-alerts");
        assert_eq!(s.kafka.topics.partitions, 6);
        assert_eq!(
            s.database.url.expose(),
            "postgres://postgres:postgres@127.0.0.1:5432/heartbeat"
        );
        assert_eq!(s.database.pool_size, 4);
        assert!(s.generator.enabled && s.processor.enabled);
        assert_eq!(
            (s.generator.customers, s.generator.rate, s.generator.seed),
            (1000, 100, None)
        );
        assert_eq!(s.http.bind, "127.0.0.1:9898");
        assert_eq!(s.validation.max_message_bytes, 65536);
        assert_eq!(s.validation.max_future_skew_ms, 300000);
        assert_eq!(
            (s.validation.min_heart_rate, s.validation.max_heart_rate),
            (20, 250)
        );
        let b = s.detector.bands;
        assert_eq!(
            (
                b.critical_low_below,
                b.low_below,
                b.high_above,
                b.critical_high_above
            ),
            (40, 60, 100, 180)
        );
        assert_eq!(
            (s.detector.spike_bpm, s.detector.spike_window_ms),
            (30, 60000)
        );
        assert_eq!(s.detector.warmup_readings, 30);
        assert_eq!(
            (s.detector.z_threshold, s.detector.min_stddev_bpm),
            (4.0, 3.0)
        );
        assert_eq!(s.detector.silence_after_ms, 30000);
        assert_eq!(s.detector.forget_after_ms, 86400000);
        assert_eq!(s.detector.resolve_after_readings, 3);
        assert_eq!(s.storage.retention_days, 30);
        assert_eq!(s.shutdown.timeout_ms, 10000);
        assert_eq!(
            (
                s.log.level.as_str(),
                s.log.format.as_str(),
                s.log.file.as_str()
            ),
            ("info", "term", "")
        );
    }

    #[test]
    fn a_file_layers_over_the_defaults() {
        let s =
            load_toml("[kafka]\nbrokers = \"b1:9092,b2:9093\"\n[generator]\nseed = 7\n").unwrap();
        assert_eq!(s.kafka.brokers, "b1:9092,b2:9093");
        assert_eq!(s.kafka.group_id, "heartbeat-processor");
        assert_eq!(s.generator.seed, Some(7));
    }

    #[test]
    fn environment_overrides_the_file_with_double_underscores() {
        let s = load_with(
            "[kafka.topics]\nreadings = \"from-file\"\n",
            vec![
                ("HEARTBEAT__KAFKA__TOPICS__READINGS", "from-env"),
                ("HEARTBEAT__KAFKA__SESSION_TIMEOUT_MS", "6000"),
                ("HEARTBEAT__GENERATOR__ENABLED", "false"),
                ("HEARTBEAT__DETECTOR__Z_THRESHOLD", "3.5"),
                ("HEARTBEAT__KAFKA__GROUP_ID", "1234"),
            ],
        )
        .unwrap();
        assert_eq!(s.kafka.topics.readings, "from-env");
        assert_eq!(s.kafka.session_timeout_ms, 6000);
        assert!(!s.generator.enabled);
        assert_eq!(s.detector.z_threshold, 3.5);
        assert_eq!(s.kafka.group_id, "1234");
    }

    #[test]
    fn a_typo_in_a_key_is_named() {
        let err = load_toml("[kafka]\nbrokrs = \"x:1\"\n").unwrap_err();
        assert_eq!(err.problems, vec!["kafka.brokrs: unknown key".to_owned()]);
    }

    #[test]
    fn a_wrong_type_is_named_with_what_was_expected() {
        let err = load_toml("[kafka]\nsession_timeout_ms = \"soon\"\n").unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].starts_with("kafka.session_timeout_ms: expected an integer"));
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err = load_with("", vec![("HEARTBEAT__DATABASE__POOL_SIZE", "many")]).unwrap_err();
        assert!(
            err.problems[0].contains("database.pool_size"),
            "{:?}",
            err.problems
        );
        assert!(err.problems[0].contains("HEARTBEAT__DATABASE__POOL_SIZE"));
        let err = load_with("", vec![("HEARTBEAT__NOPE__X", "1")]).unwrap_err();
        assert_eq!(err.problems, vec!["nope: unknown key".to_owned()]);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = load_toml(
            "unknown = 1\n[kafka]\nbrokers = 5\n[log]\nformat = \"xml\"\n[writer]\nbatch_size = 0\n",
        )
        .unwrap_err();
        // Structural problems are found first; the meaning is checked once the shape is right.
        assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
        let err = load_toml("[log]\nformat = \"xml\"\n[writer]\nbatch_size = 0\n").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Settings::load_from(
            Some(Path::new("/nonexistent/heartbeat.toml")),
            Vec::<(String, String)>::new(),
        )
        .unwrap_err();
        assert!(err.problems[0].contains("/nonexistent/heartbeat.toml"));
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let s = load_toml("[database]\nurl = \"postgres://app:hunter2@db:5432/hb\"\n").unwrap();
        let printed = format!("{:?} {} {}", s, s.database.url, s.to_redacted_toml());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("postgres://app:<redacted>@db:5432/hb"));
        assert_eq!(s.database.url.expose(), "postgres://app:hunter2@db:5432/hb");
    }

    #[test]
    fn secret_librdkafka_properties_are_printed_redacted() {
        let s = load_toml(
            "[kafka.librdkafka]\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.password\" = \"pw2\"\n\"linger.ms\" = \"5\"\n",
        )
        .unwrap();
        let printed = s.to_redacted_toml();
        assert!(
            !printed.contains("hunter2") && !printed.contains("pw2"),
            "{printed}"
        );
        assert!(
            printed.contains("\"sasl.password\" = \"<redacted>\""),
            "{printed}"
        );
        assert!(printed.contains("\"linger.ms\" = \"5\""), "{printed}");
        assert_eq!(
            s.kafka.librdkafka["sasl.password"], "hunter2",
            "still used as given"
        );
    }

    #[test]
    fn librdkafka_escape_hatch_takes_free_form_keys() {
        let s =
            load_toml("[kafka.librdkafka]\n\"fetch.max.bytes\" = \"1048576\"\n\"linger.ms\" = 5\n")
                .unwrap();
        assert_eq!(s.kafka.librdkafka["fetch.max.bytes"], "1048576");
        assert_eq!(s.kafka.librdkafka["linger.ms"], "5");
    }

    fn secret_file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn secrets_are_read_from_files_without_the_trailing_line_break() {
        let sasl = secret_file("sasl-Pw1\n");
        let key = secret_file("key-Pw2\r\n");
        let db = secret_file("db-Pw3");
        let url = secret_file("postgres://u:db-Pw4@db:5432/hb\n");
        let s = load_with(
            "",
            vec![
                ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("HEARTBEAT__KAFKA__SASL_USERNAME", "alice"),
                (
                    "HEARTBEAT__KAFKA__SASL_PASSWORD_FILE",
                    sasl.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__KAFKA__SSL_CERTIFICATE_FILE",
                    key.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__KAFKA__SSL_KEY_FILE",
                    key.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__KAFKA__SSL_KEY_PASSWORD_FILE",
                    key.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__DATABASE__PASSWORD_FILE",
                    db.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__DATABASE__URL_FILE",
                    url.path().to_str().unwrap(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.kafka.sasl_password.expose(), "sasl-Pw1");
        assert_eq!(s.kafka.ssl_key_password.expose(), "key-Pw2");
        assert_eq!(s.database.password.expose(), "db-Pw3");
        assert_eq!(s.database.url.expose(), "postgres://u:db-Pw4@db:5432/hb");
        let printed = format!("{s:?} {}", s.to_redacted_toml());
        for secret in ["sasl-Pw1", "key-Pw2", "db-Pw3", "db-Pw4"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }

    #[test]
    fn a_secret_and_its_file_together_or_an_unreadable_file_are_named_without_the_content() {
        let f = secret_file("from-file-Pw");
        let err = load_with(
            "[database]\nurl = \"postgres://u:url-Pw@db/hb\"\n",
            vec![
                ("HEARTBEAT__DATABASE__URL_FILE", f.path().to_str().unwrap()),
                ("HEARTBEAT__DATABASE__PASSWORD", "env-Pw"),
                (
                    "HEARTBEAT__DATABASE__PASSWORD_FILE",
                    f.path().to_str().unwrap(),
                ),
                (
                    "HEARTBEAT__KAFKA__SASL_PASSWORD_FILE",
                    "/nonexistent/kafka-pw",
                ),
            ],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("database.url: set both"), "{all}");
        assert!(all.contains("database.password: set both"), "{all}");
        assert!(
            all.contains("kafka.sasl_password_file: cannot read /nonexistent/kafka-pw"),
            "{all}"
        );
        for secret in ["from-file-Pw", "url-Pw", "env-Pw"] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
    }

    #[test]
    fn security_settings_are_checked_together() {
        let err = load_with(
            "",
            vec![
                ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("HEARTBEAT__KAFKA__SASL_MECHANISM", "GSSAPI"),
                ("HEARTBEAT__KAFKA__SSL_CA_FILE", "/nonexistent/ca.pem"),
                ("HEARTBEAT__KAFKA__SSL_KEY_FILE", "/nonexistent/key.pem"),
                ("HEARTBEAT__DATABASE__SSLMODE", "verify"),
            ],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "kafka.sasl_mechanism: \"GSSAPI\"",
            "kafka.sasl_username: must be set",
            "kafka.sasl_password: must be set",
            "kafka.ssl_ca_file: cannot read /nonexistent/ca.pem",
            "kafka.ssl_certificate_file: the client certificate",
            "database.sslmode: \"verify\"",
        ] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
        let err = load_with(
            "[database]\nurl = \"postgres://u@db/hb?sslmode=require\"\n",
            vec![
                ("HEARTBEAT__DATABASE__SSLMODE", "verify-full"),
                ("HEARTBEAT__KAFKA__SASL_USERNAME", "alice"),
            ],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(
            all.contains("database.sslmode: also given in database.url"),
            "{all}"
        );
        assert!(
            all.contains("kafka.sasl_username: SASL credentials are set"),
            "{all}"
        );
    }

    #[test]
    fn the_defaults_keep_plaintext_and_loopback() {
        let s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
        assert_eq!(s.kafka.security_protocol, "plaintext");
        assert!(!s.kafka.uses_tls() && !s.kafka.uses_sasl());
        assert_eq!(s.database.sslmode, "");
        assert!(s.http.bind.starts_with("127.0.0.1:"));
    }

    #[test]
    fn scrubbing_hides_secrets_as_given_and_percent_encoded() {
        let text = "failed: postgres://u:p%40ss@h/db and p@ss and hunter2";
        let out = scrub_secrets(text, &["p@ss", "hunter2", ""]);
        assert_eq!(
            out,
            "failed: postgres://u:<redacted>@h/db and <redacted> and <redacted>"
        );
    }

    /// The dotted paths of every leaf of `kind` in the schema: `config/default.toml`, plus the
    /// optional keys.
    fn schema_keys(kind: Kind) -> std::collections::BTreeSet<String> {
        fn walk(
            value: &Value,
            path: &str,
            kind: Kind,
            out: &mut std::collections::BTreeSet<String>,
        ) {
            match &value.kind {
                ValueKind::Table(table) if !FREE_FORM_TABLES.contains(&path) => {
                    for (key, child) in table {
                        walk(child, &join(path, key), kind, out);
                    }
                }
                other if Kind::of(other) == Some(kind) => {
                    out.insert(path.to_owned());
                }
                _ => {}
            }
        }
        let schema = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .unwrap();
        let mut out = std::collections::BTreeSet::new();
        walk(&schema.cache, "", kind, &mut out);
        for (key, k) in OPTIONAL_KEYS {
            if *k == kind {
                out.insert((*key).to_owned());
            }
        }
        out
    }

    fn defaults() -> Settings {
        Settings::load_from(None, Vec::<(String, String)>::new()).unwrap()
    }

    #[test]
    fn every_numeric_key_of_the_schema_has_a_range_and_its_default_is_in_it() {
        let s = defaults();
        let integers: std::collections::BTreeSet<String> = s
            .integer_keys()
            .iter()
            .map(|(k, _, _)| (*k).to_owned())
            .collect();
        assert_eq!(integers, schema_keys(Kind::Integer));
        let numbers: std::collections::BTreeSet<String> = s
            .number_keys()
            .iter()
            .map(|(k, _, _)| (*k).to_owned())
            .collect();
        assert_eq!(numbers, schema_keys(Kind::Float));
        for (key, value, range) in s.integer_keys() {
            assert!(value.map_or(true, |v| range.contains(&v)), "{key}");
        }
    }

    #[test]
    fn a_forget_after_ms_beyond_a_year_is_refused_and_named() {
        let err =
            load_with("[detector]\nforget_after_ms = 9000000000000000\n", vec![]).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["detector.forget_after_ms: 9000000000000000 is out of range 1..=31536000000"]
        );
        let s = load_with("[detector]\nforget_after_ms = 31536000000\n", vec![]).unwrap();
        assert_eq!(s.detector.forget_after_ms, 365 * 24 * 3_600_000);
    }

    /// What librdkafka says when it builds a consumer from `s` (no broker is contacted).
    fn consumer_builds(s: &Settings) -> Result<(), String> {
        crate::kafka::consumer_config(&s.kafka)
            .set("bootstrap.servers", "")
            .create::<rdkafka::consumer::BaseConsumer>()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_session_timeout_above_the_poll_interval_is_refused_and_named() {
        // librdkafka refuses to build such a consumer: `run` restarted the processor group
        // until it gave up (exit 3) on a configuration check-config had accepted.
        let env = |ms: &'static str| vec![("HEARTBEAT__KAFKA__SESSION_TIMEOUT_MS", ms)];
        let err = load_with("", env("300001")).unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "kafka.session_timeout_ms: 300001 is above librdkafka's max.poll.interval.ms \
                 300000, and librdkafka builds no consumer then; lower it, or raise \
                 kafka.librdkafka.\"max.poll.interval.ms\""
            ]
        );
        let at_the_bound = load_with("", env("300000")).unwrap();
        assert_eq!(consumer_builds(&at_the_bound), Ok(()));
        let mut past = at_the_bound.clone();
        past.kafka.session_timeout_ms = 300_001;
        assert!(consumer_builds(&past).is_err(), "librdkafka agrees");

        // The escape hatch can raise the interval, or set the session itself.
        let raised = load_with(
            "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"900000\"\n",
            env("600000"),
        )
        .unwrap();
        assert_eq!(consumer_builds(&raised), Ok(()));
        let err = load_with(
            "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"6000\"\n",
            vec![],
        )
        .unwrap_err();
        assert!(
            err.problems[0].starts_with(
                "kafka.session_timeout_ms: 10000 is above librdkafka's max.poll.interval.ms 6000"
            ),
            "{:?}",
            err.problems
        );
        let err = load_with(
            "[kafka.librdkafka]\n\"session.timeout.ms\" = \"400000\"\n",
            vec![],
        )
        .unwrap_err();
        assert!(
            err.problems[0].starts_with("kafka.librdkafka.\"session.timeout.ms\": 400000 is above"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn bands_outside_the_range_of_heart_rates_are_refused_and_named() {
        let err = load_toml(
            "[detector.bands]\ncritical_low_below = -1\ncritical_high_above = 9223372036854775807\n",
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "detector.bands.critical_low_below: -1 is out of range 0..=32767",
                "detector.bands.critical_high_above: 9223372036854775807 is out of range 0..=32767",
            ]
        );
        let s =
            load_toml("[detector.bands]\ncritical_low_below = 0\ncritical_high_above = 32767\n");
        assert!(s.is_ok(), "{s:?}");
    }

    #[test]
    fn conversions_saturate_instead_of_panicking() {
        assert_eq!(millis(-5), Duration::ZERO);
        assert_eq!(millis(i64::MAX), Duration::from_millis(i64::MAX as u64));
        assert_eq!(count(-1), 0);
        assert_eq!(time_delta(1_500), TimeDelta::milliseconds(1_500));
        assert_eq!(time_delta(i64::MAX), TimeDelta::MAX);
        assert_eq!(time_delta(i64::MIN), TimeDelta::MIN);
        let now = Utc::now();
        assert_eq!(ms_before(now, 1_000), now - TimeDelta::seconds(1));
        assert_eq!(
            ms_before(now, 9_000_000_000_000_000),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(ms_before(now, i64::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(ms_before(now, i64::MIN), DateTime::<Utc>::MAX_UTC);
        assert_eq!(mebibytes(100), 100 * 1024 * 1024);
        assert_eq!(mebibytes(i64::MAX), u64::MAX);
        assert_eq!(mebibytes(-1), 0);
    }

    #[test]
    fn env_name_spells_the_variable() {
        assert_eq!(
            env_name("kafka.topics.readings"),
            "HEARTBEAT__KAFKA__TOPICS__READINGS"
        );
    }
}

/// Every numeric key at random values within its range (its ends favoured), the others at their
/// defaults: the configuration loads, and everything the program builds from settings builds
/// without a panic, including the arithmetic other modules do with the values, written out here
/// as each call site does it (named beside it). A value just past a range is refused, the key
/// named.
#[cfg(test)]
mod properties {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Instant;

    use chrono::{Datelike, Days};
    use proptest::prelude::*;
    use rdkafka::admin::AdminClient;
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;

    use super::*;
    use crate::actors::anomaly_detector::AnomalyDetector;
    use crate::actors::kafka_subscriber::Batching;
    use crate::actors::supervisor::{RestartHistory, RestartPolicy};
    use crate::actors::{Downstream, ExitGuard, Stage};
    use crate::domain::detector::{observe, silence, CustomerState, DetectorConfig};
    use crate::domain::reading::Reading;
    use crate::domain::simulator::Simulator;
    use crate::domain::validation::validate;

    fn defaults() -> Settings {
        Settings::load_from(None, Vec::<(String, String)>::new()).unwrap()
    }

    /// A value of `range` from a random number: either end a quarter of the time each, else
    /// anywhere in it.
    fn pick(range: &RangeInclusive<i64>, raw: u64) -> i64 {
        let (lo, hi) = (i128::from(*range.start()), i128::from(*range.end()));
        let value = match raw % 4 {
            0 => lo,
            1 => hi,
            _ => lo + i128::from(raw / 4) % (hi - lo + 1),
        };
        i64::try_from(value).unwrap()
    }

    /// A value of `range` from a random number, ends favoured likewise.
    fn pick_number(range: NumberRange, raw: u64) -> f64 {
        let unit = (raw >> 11) as f64 / (1u64 << 53) as f64;
        match (range, raw % 4) {
            (NumberRange::Fraction, 0) => 0.0,
            (NumberRange::Fraction, 1) => 1.0,
            (NumberRange::Fraction, _) => unit,
            (NumberRange::PositiveUpTo(max), 0) => max,
            (NumberRange::PositiveUpTo(_), 1) => f64::MIN_POSITIVE,
            (NumberRange::PositiveUpTo(max), _) => (unit * max).max(f64::MIN_POSITIVE),
        }
    }

    /// The environment (and a file, for the escape hatch) that sets every numeric key to a value
    /// picked from `raws`, with the keys that `validate` compares put in order.
    fn configuration(raws: &[u64], number_raws: &[u64]) -> (String, Vec<(String, String)>) {
        let d = defaults();
        let mut ints: BTreeMap<&str, i64> = d
            .integer_keys()
            .iter()
            .zip(raws.iter().cycle())
            .map(|((key, _, range), raw)| (*key, pick(range, *raw)))
            .collect();
        let mut in_order = |keys: &[&'static str]| {
            let mut values: Vec<i64> = keys.iter().map(|k| ints[k]).collect();
            values.sort_unstable();
            for (k, v) in keys.iter().zip(values) {
                ints.insert(k, v);
            }
        };
        in_order(&["validation.min_heart_rate", "validation.max_heart_rate"]);
        in_order(&["supervisor.backoff_min_ms", "supervisor.backoff_max_ms"]);
        in_order(&[
            "detector.bands.critical_low_below",
            "detector.bands.low_below",
            "detector.bands.high_above",
            "detector.bands.critical_high_above",
        ]);
        // A session longer than librdkafka's default poll interval needs the interval raised.
        let session = ints["kafka.session_timeout_ms"];
        let file = if session > LIBRDKAFKA_MAX_POLL_INTERVAL_MS {
            format!("[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"{session}\"\n")
        } else {
            String::new()
        };
        let mut env: Vec<(String, String)> = ints
            .into_iter()
            .map(|(key, value)| (env_name(key), value.to_string()))
            .collect();
        for ((key, _, range), raw) in d.number_keys().iter().zip(number_raws.iter().cycle()) {
            env.push((env_name(key), format!("{:?}", pick_number(*range, *raw))));
        }
        (file, env)
    }

    fn load(file: &str, env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
        let path = std::env::temp_dir().join(format!("hb-props-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, file).unwrap();
        let result = Settings::load_from(Some(&path), env);
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Everything the program builds from `s`, and the arithmetic it does with the values. With
    /// `clients`, also the Kafka clients, pools and the detector actor (0.1 s and a few threads
    /// each: for the fixed cases, not for every case of the property).
    fn build_everything(s: &Settings, clients: bool) {
        let now = Utc::now();
        if clients {
            build_clients(s);
        }
        build_values(s, now);
    }

    fn build_clients(s: &Settings) {
        // What `main` checks, then the clients `run` and `generate` create (no broker is
        // contacted without bootstrap servers). Side by side: librdkafka takes 0.1 s to let go
        // of a consumer or an admin client.
        let problems = crate::kafka::check_properties(&s.kafka);
        assert!(problems.is_empty(), "{problems:?}");
        let quiet = |mut c: rdkafka::ClientConfig| {
            c.set("bootstrap.servers", "");
            c
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                quiet(crate::kafka::consumer_config(&s.kafka))
                    .create::<BaseConsumer>()
                    .expect("the processor's consumer")
            });
            scope.spawn(|| {
                quiet(crate::kafka::admin_config(&s.kafka))
                    .create::<AdminClient<DefaultClientContext>>()
                    .expect("the admin client")
            });
            quiet(crate::kafka::producer_config(&s.kafka))
                .create::<BaseProducer>()
                .expect("the publishers' producer");
        });
        // run.rs prepare_topics.
        i32::try_from(s.kafka.topics.partitions).expect("topic partitions fit an i32");

        // pipeline.rs: the writers' pool, at least a connection per writer.
        let writers = count(s.writer.parallelism).max(1);
        let _pool = crate::db::pool(
            &s.database,
            (s.database.pool_size as u32).max(writers as u32),
        );

        // The detector actor.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let _detector = AnomalyDetector::new(
            &s.detector,
            count(s.writer.batch_size),
            crate::db::pool(&s.database, 2),
            s.database.clone(),
            Arc::new(crate::progress::PartitionProgress::default()),
            Arc::new(crate::offsets::OffsetLedger::new(
                crate::telemetry::discard(),
            )),
            Downstream::new(Stage::DbWriter, Vec::new()),
            Arc::new(crate::metrics::Metrics::new()),
            Arc::new(crate::health::Health::new()),
            &crate::telemetry::discard(),
            ExitGuard::new(Stage::AnomalyDetector.as_str(), 0, tx),
        );
    }

    fn build_values(s: &Settings, now: DateTime<Utc>) {
        let cfg = DetectorConfig::from_settings(&s.detector);
        let (lo, hi) = (s.validation.min_heart_rate, s.validation.max_heart_rate);
        let rates: Vec<i16> = [lo, hi, (lo + hi) / 2, lo, hi]
            .iter()
            .map(|bpm| i16::try_from(*bpm).unwrap())
            .collect();
        let window = time_delta(s.detector.spike_window_ms);
        let mut state = CustomerState::default();
        let readings = cfg.warmup_readings.min(40) + 10;
        let mut at = now;
        for i in 0..readings {
            // Now a second on, now exactly a spike window, now back in time.
            at = match i % 3 {
                0 => at + TimeDelta::seconds(1),
                1 => at + window,
                _ => at - TimeDelta::milliseconds(1),
            };
            let reading = Reading {
                event_id: uuid::Uuid::new_v4(),
                customer_id: "CUST-1".to_owned(),
                recorded_at: at,
                heart_rate: rates[i as usize % rates.len()],
            };
            observe(&cfg, &mut state, &reading);
        }
        silence(&mut state, "CUST-1");
        serde_json::to_value(&state).expect("a checkpoint of the state");
        // anomaly_detector.rs acquire -> queries.rs load_partition_states: since =
        // now - forget_after.
        let forget_ms =
            i64::try_from(millis(s.detector.forget_after_ms).as_millis()).unwrap_or(i64::MAX);
        let _ = ms_before(Utc::now(), forget_ms);
        // anomaly_detector.rs checkpoint_period, at its largest spread, and the next checkpoint.
        let every = millis(s.detector.checkpoint_interval_ms);
        let period = every - every.mul_f64(1023.0 / 2048.0);
        let _ = std::time::Instant::now() + period;

        // The validator.
        let rules = crate::pipeline::validation_rules(s);
        for text in [
            r#"{"customer_id":"C","timestamp":"9999-12-31T23:59:59Z","heart_rate":72}"#,
            r#"{"customer_id":"C","timestamp":"1970-01-01T00:00:00Z","heart_rate":32767}"#,
        ] {
            let _ = validate(Some(text.as_bytes()), Some(now), &rules);
            let _ = validate(Some(text.as_bytes()), None, &rules);
        }

        // The generator: its plan, and the simulator with at most a thousand customers (a
        // larger fleet only allocates more), the time between a customer's readings kept.
        let mut plan = crate::commands::run::generator_plan(s, Some(20));
        let interval = plan.sim.reading_interval_s();
        let fleet = plan.sim.customers.min(1_000);
        plan.sim.rate *= fleet as f64 / plan.sim.customers as f64;
        plan.sim.customers = fleet;
        assert!((plan.sim.reading_interval_s() - interval).abs() <= interval * 1e-9 + 1e-9);
        let mut sim = Simulator::new(plan.sim.clone());
        for _ in 0..20 {
            sim.next_record(now);
        }
        // generator.rs produce: what is owed after an hour.
        let owed = (3_600.0 * plan.rate as f64) as u64;
        let _ = owed.min(plan.rate.max(1));

        // The intake's batches and their deadline (pipeline.rs, kafka_subscriber.rs intake).
        let batching = Batching {
            max_records: count(s.writer.batch_size),
            max_wait: millis(s.writer.flush_interval_ms),
        };
        let _ = tokio::time::Instant::now() + batching.max_wait;
        // The drain: the supervisor's timeout and the ledger's deadline (offsets.rs).
        let _ = Instant::now() + millis(s.shutdown.timeout_ms);
        // The supervisor: every restart the policy allows, and one more.
        let policy = RestartPolicy::from_settings(&s.supervisor);
        let mut history = RestartHistory::new(policy);
        let start = Instant::now();
        for i in 0..=policy.max_restarts.min(20) as u64 {
            if let Some(wait) = history.record(start + Duration::from_millis(i)) {
                let _ = wait.as_millis() as u64;
            }
        }
        let _ = policy.window.as_secs();

        // run.rs storage upkeep: PostgreSQL computes today - retention_days, which must stay in
        // its dates (4713 BC on).
        let keep = i32::try_from(s.storage.retention_days).expect("retention days fit an i32");
        let oldest = now
            .date_naive()
            .checked_sub_days(Days::new(u64::try_from(keep).unwrap()))
            .expect("a date");
        assert!(oldest.year() > -4713, "{oldest}");

        // telemetry.rs: the rotating log file.
        let _ = (mebibytes(s.log.max_size_mb), count(s.log.max_files));
    }

    fn integer_keys() -> usize {
        defaults().integer_keys().len()
    }

    fn number_keys() -> usize {
        defaults().number_keys().len()
    }

    #[test]
    fn every_key_at_its_minimum_or_at_its_maximum_loads_and_builds() {
        for raw in [0, 1] {
            let (file, env) = configuration(&[raw], &[raw]);
            let s = load(&file, env).unwrap_or_else(|e| panic!("{e}"));
            build_everything(&s, true);
        }
    }

    proptest! {
        #[test]
        fn any_configuration_within_the_ranges_loads_and_builds(
            raws in prop::collection::vec(any::<u64>(), integer_keys()),
            number_raws in prop::collection::vec(any::<u64>(), number_keys()),
        ) {
            let (file, env) = configuration(&raws, &number_raws);
            let s = load(&file, env.clone());
            prop_assert!(s.is_ok(), "refused: {:?}\nfrom {env:?}\n{file}", s.err());
            let s = s.unwrap();
            // What `main` checks of librdkafka's properties (no client is created for these).
            let problems = crate::kafka::check_properties(&s.kafka);
            prop_assert!(problems.is_empty(), "{problems:?}");
            build_everything(&s, false);
        }
    }

    proptest! {
        #[test]
        fn an_integer_just_past_its_range_is_refused_with_the_key_named(
            index in any::<prop::sample::Index>(),
            above in any::<bool>(),
            distance in prop_oneof![Just(1u64), 1u64..1_000, any::<u64>()],
        ) {
            let d = defaults();
            let keys = d.integer_keys();
            let (key, _, range) = index.get(&keys);
            let past = if above {
                range.end().checked_add_unsigned(distance)
            } else {
                range.start().checked_sub_unsigned(distance)
            };
            // Nothing lies past the ends of i64 (generator.seed reaches one).
            let Some(value) = past else { return Ok(()) };
            let err = Settings::load_from(None, vec![(env_name(key), value.to_string())]);
            let problems = err.expect_err("refused").problems;
            let named = format!("{key}: {value} is out of range");
            prop_assert!(problems.iter().any(|p| p.starts_with(&named)), "{problems:?}");
        }
    }

    #[test]
    fn a_number_just_past_its_range_is_refused_with_the_key_named() {
        for (key, _, range) in defaults().number_keys() {
            let past = match range {
                NumberRange::Fraction => vec![-f64::MIN_POSITIVE, -0.5, 1.0 + f64::EPSILON, 2.0],
                NumberRange::PositiveUpTo(max) => {
                    vec![0.0, -1.0, max * (1.0 + f64::EPSILON), 1e300]
                }
            };
            for value in past {
                let env = vec![(env_name(key), format!("{value:?}"))];
                let problems = Settings::load_from(None, env).expect_err(key).problems;
                let named = format!("{key}: {value} must be");
                assert!(
                    problems.iter().any(|p| p.starts_with(&named)),
                    "{problems:?}"
                );
            }
        }
    }
}
