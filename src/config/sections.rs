//! The `Settings` tree: one struct per section of `config/default.toml`, each with the rules its
//! values must follow beside its fields ([`Rules`]) and a `check` of how its keys go together.
//! `[kafka]` and `[database]` have files of their own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::database::DatabaseSettings;
use super::kafka::{KafkaSettings, TopicSettings};
use super::rules::{choice, is_host_port, millis, NumberRange, Problems, Rule, Rules, Sections};
use super::secret::redact_url_password;

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
    pub alerts: AlertSettings,
}

impl Settings {
    /// Every section's rules, in the order of `config/default.toml`.
    pub(super) const SECTIONS: Sections = &[
        ("kafka", KafkaSettings::RULES),
        ("kafka.topics", TopicSettings::RULES),
        ("database", DatabaseSettings::RULES),
        ("generator", GeneratorSettings::RULES),
        ("generator.inject", InjectSettings::RULES),
        ("validation", ValidationSettings::RULES),
        ("detector", DetectorSettings::RULES),
        ("detector.bands", BandSettings::RULES),
        ("writer", WriterSettings::RULES),
        ("storage", StorageSettings::RULES),
        ("supervisor", SupervisorSettings::RULES),
        ("shutdown", ShutdownSettings::RULES),
        ("log", LogSettings::RULES),
        ("alerts", AlertSettings::RULES),
        ("alerts.sustain_ms", SustainSettings::RULES),
        ("alerts.alertmanager", AlertmanagerSettings::RULES),
    ];

    /// How the keys go together (orderings, formats, what goes with the security protocol);
    /// each key's own value was held to its rule before (a refused one is not judged here).
    pub(super) fn check(&self, p: &mut Problems) {
        self.kafka.check(p);
        self.database.check(p);
        if !is_host_port(&self.http.bind) {
            p.push(format!("http.bind: {:?} must be host:port", self.http.bind));
        }
        self.validation.check(p);
        self.detector.bands.check(p);
        self.supervisor.check(p);
        self.alerts.alertmanager.check(p);
    }
}

/// The largest value of a duration that must fit a signed 32-bit count of milliseconds (about
/// 24.8 days).
const I32_MAX: i64 = i32::MAX as i64;

/// A year of 365 days in milliseconds: the longest any duration key that is measured back from
/// now may be.
pub const YEAR_MS: i64 = 365 * 24 * 3_600_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSettings {
    pub enabled: bool,
    /// Simulated customers.
    pub customers: usize,
    /// Readings per second over all customers; 0 = as fast as the broker takes them.
    pub rate: u64,
    /// `None`: a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub fault_rate: f64,
    /// Send each reading's `activity`, from the simulator's schedule (SPEC sections 3 and 4). A
    /// boolean: its type is its whole rule, so it has no entry in [`Self::RULES`].
    pub activity: bool,
    /// Injected episodes per customer-hour of simulated time (`generator.inject.*`).
    pub inject: InjectSettings,
}

impl GeneratorSettings {
    pub(super) const RULES: Rules = &[
        ("customers", Rule::Integer(1..=10_000_000)),
        ("rate", Rule::Integer(0..=10_000_000)),
        ("seed", Rule::Integer(0..=i64::MAX)),
        ("fault_rate", Rule::Number(NumberRange::Fraction)),
    ];
}

/// `[generator.inject]`: the expected number of injected episodes of each kind per customer and
/// hour of simulated time (0..1), whatever the sampling interval (docs/GENERATOR.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InjectSettings {
    pub bradycardia: f64,
    pub tachycardia: f64,
    pub critical_low: f64,
    pub critical_high: f64,
    pub spike: f64,
    pub deviation: f64,
    pub silent: f64,
}

impl InjectSettings {
    pub(super) const RULES: Rules = &[
        ("bradycardia", Rule::Number(NumberRange::Fraction)),
        ("tachycardia", Rule::Number(NumberRange::Fraction)),
        ("critical_low", Rule::Number(NumberRange::Fraction)),
        ("critical_high", Rule::Number(NumberRange::Fraction)),
        ("spike", Rule::Number(NumberRange::Fraction)),
        ("deviation", Rule::Number(NumberRange::Fraction)),
        ("silent", Rule::Number(NumberRange::Fraction)),
    ];
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
    pub max_message_bytes: usize,
    #[serde(with = "millis")]
    pub max_future_skew_ms: Duration,
    /// How many days a reading's timestamp may be behind its Kafka record's; 0 = no bound.
    pub max_age_days: u32,
    pub min_heart_rate: i16,
    pub max_heart_rate: i16,
}

impl ValidationSettings {
    pub(super) const RULES: Rules = &[
        ("max_message_bytes", Rule::Integer(1..=100 * 1024 * 1024)),
        ("max_future_skew_ms", Rule::Integer(0..=I32_MAX)),
        // Up to about 100 years; 0 = no bound.
        ("max_age_days", Rule::Integer(0..=36_600)),
        // Heart rates are smallints.
        ("min_heart_rate", Rule::Integer(0..=32_767)),
        ("max_heart_rate", Rule::Integer(0..=32_767)),
    ];

    fn check(&self, p: &mut Problems) {
        let keys = ["validation.min_heart_rate", "validation.max_heart_rate"];
        if p.judged(&keys) && self.min_heart_rate > self.max_heart_rate {
            p.push(format!(
                "validation.min_heart_rate: {} is above validation.max_heart_rate {}",
                self.min_heart_rate, self.max_heart_rate
            ));
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSettings {
    /// A spike is a change of at least this many bpm from the previous reading ...
    pub spike_bpm: u16,
    /// ... within this long.
    #[serde(with = "millis")]
    pub spike_window_ms: Duration,
    /// Readings per customer before baseline deviations are reported.
    pub warmup_readings: u32,
    pub z_threshold: f64,
    pub min_stddev_bpm: f64,
    /// A customer with no reading for this long (while caught up) is reported silent.
    #[serde(with = "millis")]
    pub silence_after_ms: Duration,
    /// Customers quiet for this long are forgotten.
    #[serde(with = "millis")]
    pub forget_after_ms: Duration,
    /// Readings without an alert's kind that close its episode.
    pub resolve_after_readings: u32,
    /// How often each partition is checkpointed; zero = with every batch.
    #[serde(with = "millis")]
    pub checkpoint_interval_ms: Duration,
    /// Customers whose state the detector keeps in memory at most; beyond it, the least
    /// recently seen are saved and evicted, and loaded again at their next reading.
    pub max_resident_customers: usize,
    pub bands: BandSettings,
}

impl DetectorSettings {
    pub(super) const RULES: Rules = &[
        ("spike_bpm", Rule::Integer(1..=1_000)),
        ("spike_window_ms", Rule::Integer(1..=I32_MAX)),
        ("warmup_readings", Rule::Integer(0..=1_000_000)),
        // Standard deviations; a hundred is far past any useful threshold (the default is 4).
        (
            "z_threshold",
            Rule::Number(NumberRange::PositiveUpTo(100.0)),
        ),
        // bpm; a thousand is wider than any plausible range of heart rates.
        (
            "min_stddev_bpm",
            Rule::Number(NumberRange::PositiveUpTo(1_000.0)),
        ),
        ("silence_after_ms", Rule::Integer(1..=I32_MAX)),
        // A year: "now minus this" must stay a date (it bounds which saved states load).
        ("forget_after_ms", Rule::Integer(1..=YEAR_MS)),
        ("resolve_after_readings", Rule::Integer(1..=1_000_000)),
        ("checkpoint_interval_ms", Rule::Integer(0..=600_000)),
        // A hundred million customers' states would take some 60 GiB of memory.
        ("max_resident_customers", Rule::Integer(1..=100_000_000)),
    ];
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BandSettings {
    pub critical_low_below: i16,
    pub low_below: i16,
    pub high_above: i16,
    pub critical_high_above: i16,
}

impl BandSettings {
    /// bpm, compared with heart rates, which are smallints.
    pub(super) const RULES: Rules = &[
        ("critical_low_below", Rule::Integer(0..=32_767)),
        ("low_below", Rule::Integer(0..=32_767)),
        ("high_above", Rule::Integer(0..=32_767)),
        ("critical_high_above", Rule::Integer(0..=32_767)),
    ];

    fn check(&self, p: &mut Problems) {
        let keys = BandSettings::RULES
            .iter()
            .map(|(k, _)| format!("detector.bands.{k}"))
            .collect::<Vec<_>>();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        if p.judged(&keys)
            && !(self.critical_low_below <= self.low_below
                && self.low_below <= self.high_above
                && self.high_above <= self.critical_high_above)
        {
            p.push(format!(
                "detector.bands: need critical_low_below <= low_below <= high_above <= \
                 critical_high_above, got {} {} {} {}",
                self.critical_low_below, self.low_below, self.high_above, self.critical_high_above
            ));
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriterSettings {
    /// Records per batch, at most.
    pub batch_size: usize,
    /// How long the oldest record of a batch waits, at most.
    #[serde(with = "millis")]
    pub flush_interval_ms: Duration,
    /// Writers working in parallel.
    pub parallelism: usize,
}

impl WriterSettings {
    pub(super) const RULES: Rules = &[
        ("batch_size", Rule::Integer(1..=100_000)),
        ("flush_interval_ms", Rule::Integer(1..=60_000)),
        ("parallelism", Rule::Integer(1..=16)),
    ];
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Days of readings kept; 0 keeps everything.
    pub retention_days: u32,
}

impl StorageSettings {
    pub(super) const RULES: Rules = &[("retention_days", Rule::Integer(0..=1_000_000))];
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// More restarts than this within the window and the process gives up (exit 3).
    pub max_restarts: usize,
    #[serde(with = "millis")]
    pub restart_window_ms: Duration,
    #[serde(with = "millis")]
    pub backoff_min_ms: Duration,
    #[serde(with = "millis")]
    pub backoff_max_ms: Duration,
}

impl SupervisorSettings {
    pub(super) const RULES: Rules = &[
        ("max_restarts", Rule::Integer(0..=1_000_000)),
        ("restart_window_ms", Rule::Integer(1..=I32_MAX)),
        ("backoff_min_ms", Rule::Integer(0..=3_600_000)),
        ("backoff_max_ms", Rule::Integer(0..=3_600_000)),
    ];

    fn check(&self, p: &mut Problems) {
        let keys = ["supervisor.backoff_min_ms", "supervisor.backoff_max_ms"];
        if p.judged(&keys) && self.backoff_min_ms > self.backoff_max_ms {
            p.push(format!(
                "supervisor.backoff_min_ms: {} is above supervisor.backoff_max_ms {}",
                self.backoff_min_ms.as_millis(),
                self.backoff_max_ms.as_millis()
            ));
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long a graceful stop may take to drain and commit.
    #[serde(with = "millis")]
    pub timeout_ms: Duration,
}

impl ShutdownSettings {
    pub(super) const RULES: Rules = &[("timeout_ms", Rule::Integer(0..=3_600_000))];
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
    /// Also write JSON lines to this file; empty = no file.
    pub file: String,
    pub max_size_mb: u64,
    /// Files kept, the current one included.
    pub max_files: usize,
}

choice! {
    /// `log.level`: the least severe level logged.
    pub enum LogLevel {
        Trace = "trace",
        Debug = "debug",
        Info = "info",
        Warning = "warning" | "warn",
        Error = "error",
        Critical = "critical",
    }
    note = "";
}

choice! {
    /// `log.format`.
    pub enum LogFormat {
        /// For people.
        Term = "term",
        /// JSON lines, for machines.
        Json = "json",
    }
    note = "";
}

impl LogSettings {
    pub(super) const RULES: Rules = &[
        ("level", Rule::Choice(&LogLevel::CHOICES)),
        ("format", Rule::Choice(&LogFormat::CHOICES)),
        ("max_size_mb", Rule::Integer(1..=1_000_000)),
        ("max_files", Rule::Integer(1..=1_000)),
    ];

    /// `log.max_size_mb` in bytes.
    pub fn max_size_bytes(&self) -> u64 {
        self.max_size_mb.saturating_mul(1024 * 1024)
    }
}

/// `[alerts]`: what turns findings into alerts that page a person (SPEC section 5).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often each processor reads `alert_rules` again: a change made with
    /// `heartbeat-pipeline rules` (or SQL) applies within this long, with no restart.
    #[serde(with = "millis")]
    pub rules_refresh_ms: Duration,
    /// Per kind, how long an episode must last before it activates (pages a person).
    pub sustain_ms: SustainSettings,
    /// Where activated episodes are delivered besides `kafka.topics.alerts` (SPEC section 8).
    pub alertmanager: AlertmanagerSettings,
}

/// `[alerts.alertmanager]`: the Alertmanagers every activated episode is delivered to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Comma-separated base URLs (`http://host:9093`, or `https://user:password@host/prefix`);
    /// each gets every alert. Empty: no Alertmanager (the Kafka episode events still go out).
    /// Printed with every password redacted.
    #[serde(serialize_with = "serialize_urls")]
    pub urls: String,
    /// How often an open episode is sent again (`endsAt` three of these ahead, so an
    /// Alertmanager that stops hearing from the pipeline resolves it by itself).
    #[serde(with = "millis")]
    pub resend_interval_ms: Duration,
    /// How long one request to an Alertmanager may take before it counts as failed.
    #[serde(with = "millis")]
    pub timeout_ms: Duration,
    /// The least time between an episode's firing reaching an Alertmanager and its resolution
    /// being sent there. Alertmanager notifies only what a flush of a group finds: nobody of a
    /// group whose alerts are all resolved by its first flush (`group_wait`), and only the
    /// resolution of an episode that fired and resolved between two flushes (`group_interval`);
    /// set it to at least the routes' `group_wait` and `group_interval`.
    #[serde(with = "millis")]
    pub min_firing_ms: Duration,
}

impl AlertmanagerSettings {
    pub(super) const RULES: Rules = &[
        // At least a second (every open episode goes to every Alertmanager each time); at most
        // an hour, past which an Alertmanager that lost its state (a restart without its data
        // directory) would not hear of an open episode for too long.
        ("resend_interval_ms", Rule::Integer(1_000..=3_600_000)),
        ("timeout_ms", Rule::Integer(100..=120_000)),
        // At most 10 minutes: a resolution held longer leaves a person chasing an episode that
        // is over.
        ("min_firing_ms", Rule::Integer(0..=600_000)),
    ];

    /// The base URLs, each trimmed, without a trailing `/`; none when `urls` is empty.
    pub fn url_list(&self) -> Vec<String> {
        self.urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    fn check(&self, p: &mut Problems) {
        let urls = self.url_list();
        if urls.is_empty() && !self.urls.trim().is_empty() {
            p.push(format!(
                "alerts.alertmanager.urls: {:?} must be comma-separated http:// or https:// URLs",
                redact_urls(&self.urls)
            ));
        }
        for url in &urls {
            if let Err(why) = check_base_url(url) {
                p.push(format!(
                    "alerts.alertmanager.urls: {:?} {why}",
                    redact_url_password(url)
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for url in &urls {
            if !seen.insert(url) {
                p.push(format!(
                    "alerts.alertmanager.urls: {:?} is given twice",
                    redact_url_password(url)
                ));
            }
        }
    }
}

/// Why `url` is not an Alertmanager base URL: `http` or `https`, a host (and port), an optional
/// path prefix (a proxy's), no query or fragment.
fn check_base_url(url: &str) -> Result<(), &'static str> {
    let target = AlertmanagerTarget::parse(url);
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        _ => return Err("must start with http:// or https://"),
    };
    if rest.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:9093`.
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) if !addr.is_empty() => None,
            Some((addr, port)) if !addr.is_empty() => Some(port.strip_prefix(':').unwrap_or("x")),
            _ => return Err("has no host"),
        },
        None => match host.rsplit_once(':') {
            Some(("", _)) => return Err("has no host"),
            Some((_, port)) => Some(port),
            None if host.is_empty() => return Err("has no host"),
            None => None,
        },
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("has a port that is not a number from 0 to 65535");
    }
    if host.contains(char::is_whitespace) || target.url.contains(char::is_whitespace) {
        return Err("must not contain white space");
    }
    Ok(())
}

/// One Alertmanager of `alerts.alertmanager.urls`, as the delivery reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerTarget {
    /// The base URL without its user info.
    pub url: String,
    /// User and password for HTTP basic authentication, from the URL's user info.
    pub basic_auth: Option<(String, String)>,
}

impl AlertmanagerTarget {
    /// Splits the user info (`user:password@`) off a base URL.
    pub fn parse(url: &str) -> AlertmanagerTarget {
        let Some((scheme, rest)) = url.split_once("://") else {
            return AlertmanagerTarget {
                url: url.to_owned(),
                basic_auth: None,
            };
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                AlertmanagerTarget {
                    url: format!("{scheme}://{host}{path}"),
                    basic_auth: Some((user.to_owned(), password.to_owned())),
                }
            }
            None => AlertmanagerTarget {
                url: url.to_owned(),
                basic_auth: None,
            },
        }
    }
}

impl AlertmanagerSettings {
    /// The Alertmanagers to deliver to, in the order given.
    pub fn targets(&self) -> Vec<AlertmanagerTarget> {
        self.url_list()
            .iter()
            .map(|u| AlertmanagerTarget::parse(u))
            .collect()
    }
}

/// `urls` with the password of each URL hidden.
fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| redact_url_password(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn serialize_urls<S: serde::Serializer>(urls: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_urls(urls))
}

/// `[alerts.sustain_ms]`: per kind, how long after its opening reading a counting reading must
/// come for the episode to activate (SPEC section 5); 0 = at once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SustainSettings {
    #[serde(with = "millis")]
    pub critical_low: Duration,
    #[serde(with = "millis")]
    pub critical_high: Duration,
    #[serde(with = "millis")]
    pub bradycardia: Duration,
    #[serde(with = "millis")]
    pub tachycardia: Duration,
    #[serde(with = "millis")]
    pub spike: Duration,
    #[serde(with = "millis")]
    pub deviation: Duration,
    #[serde(with = "millis")]
    pub silent: Duration,
}

impl SustainSettings {
    /// 0 to a day, for every kind: a state that must last longer than a day before anyone hears
    /// of it is a trend for a report, not an alert.
    pub(super) const RULES: Rules = &[
        ("critical_low", Rule::Integer(0..=DAY_MS)),
        ("critical_high", Rule::Integer(0..=DAY_MS)),
        ("bradycardia", Rule::Integer(0..=DAY_MS)),
        ("tachycardia", Rule::Integer(0..=DAY_MS)),
        ("spike", Rule::Integer(0..=DAY_MS)),
        ("deviation", Rule::Integer(0..=DAY_MS)),
        ("silent", Rule::Integer(0..=DAY_MS)),
    ];
}

/// A day in milliseconds.
const DAY_MS: i64 = 24 * 3600 * 1000;

impl AlertSettings {
    pub(super) const RULES: Rules = &[
        // At least 100 ms: every processor reads the table each time, and no person notices a
        // change faster than that. At most 10 minutes, the longest default sustain
        // (bradycardia, tachycardia): a rule that arrived later would miss the very alerts it
        // was set for.
        ("rules_refresh_ms", Rule::Integer(100..=600_000)),
    ];
}
