//! `[kafka]` and `[kafka.topics]`: the brokers, the consumer group, the topics and how the
//! clients talk to the brokers (TLS, SASL), with what each value must be.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{check_readable_file, choice, is_host_port, millis, Problems, Rule, Rules};
use super::secret::{serialize_librdkafka, Secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// How long the group waits for a silent member (librdkafka's `session.timeout.ms`).
    #[serde(with = "millis")]
    pub session_timeout_ms: Duration,
    /// librdkafka's `security.protocol`.
    pub security_protocol: SecurityProtocol,
    /// For the sasl_* protocols.
    pub sasl_mechanism: SaslMechanism,
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

choice! {
    /// The security protocols of `kafka.security_protocol`.
    pub enum SecurityProtocol {
        Plaintext = "plaintext",
        /// TLS.
        Ssl = "ssl",
        /// SASL login, no TLS.
        SaslPlaintext = "sasl_plaintext",
        /// SASL inside TLS.
        SaslSsl = "sasl_ssl",
    }
    note = "";
}

choice! {
    /// The SASL mechanisms of `kafka.sasl_mechanism` (librdkafka built with OpenSSL, no GSSAPI).
    pub enum SaslMechanism {
        Plain = "PLAIN",
        ScramSha256 = "SCRAM-SHA-256",
        ScramSha512 = "SCRAM-SHA-512",
    }
    note = "";
}

/// librdkafka's default `max.poll.interval.ms`, which `kafka.session_timeout_ms` may not exceed
/// unless the escape hatch raises it.
pub const LIBRDKAFKA_MAX_POLL_INTERVAL_MS: i64 = 300_000;

impl KafkaSettings {
    pub(super) const RULES: Rules = &[
        ("session_timeout_ms", Rule::Integer(1_000..=3_600_000)),
        (
            "security_protocol",
            Rule::Choice(&SecurityProtocol::CHOICES),
        ),
        ("sasl_mechanism", Rule::Choice(&SaslMechanism::CHOICES)),
    ];

    pub fn uses_tls(&self) -> bool {
        matches!(
            self.security_protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        )
    }

    pub fn uses_sasl(&self) -> bool {
        matches!(
            self.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The brokers, the group, the topics, the session and the security keys.
    pub(super) fn check(&self, p: &mut Problems) {
        if self.brokers.split(',').any(|b| !is_host_port(b.trim())) {
            p.push(format!(
                "kafka.brokers: {:?} must be comma-separated host:port pairs",
                self.brokers
            ));
        }
        if self.group_id.trim().is_empty() {
            p.push("kafka.group_id: must not be empty".to_owned());
        }
        self.topics.check(p);
        self.check_session_timeout(p);
        self.check_security(p);
    }

    /// The consumer's session against its poll interval: librdkafka builds no consumer whose
    /// `session.timeout.ms` is above its `max.poll.interval.ms`, so a start would fail again and
    /// again. Either may come from the escape hatch, which is applied last.
    fn check_session_timeout(&self, p: &mut Problems) {
        let hatch = |property: &str| {
            self.librdkafka
                .get(property)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let (session_key, session) = match hatch("session.timeout.ms") {
            Some(ms) => ("kafka.librdkafka.\"session.timeout.ms\"", ms),
            None if p.judged(&["kafka.session_timeout_ms"]) => (
                "kafka.session_timeout_ms",
                i64::try_from(self.session_timeout_ms.as_millis()).unwrap_or(i64::MAX),
            ),
            None => return,
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

    /// The TLS and SASL keys, which go together with the protocol.
    fn check_security(&self, p: &mut Problems) {
        let protocol_known = p.judged(&["kafka.security_protocol"]);
        let protocol = self.security_protocol.as_str();
        if !protocol_known {
            // Refused already; what goes with it cannot be judged against it.
        } else if self.uses_sasl() {
            if self.sasl_username.is_empty() {
                p.push(format!(
                    "kafka.sasl_username: must be set with kafka.security_protocol = {protocol:?}"
                ));
            }
            if self.sasl_password.is_empty() {
                p.push(format!(
                    "kafka.sasl_password: must be set (or kafka.sasl_password_file) with \
                     kafka.security_protocol = {protocol:?}"
                ));
            }
        } else if !self.sasl_username.is_empty() || !self.sasl_password.is_empty() {
            p.push(format!(
                "kafka.sasl_username: SASL credentials are set but kafka.security_protocol is \
                 {protocol:?}: use sasl_ssl (or sasl_plaintext)"
            ));
        }
        let tls_keys = [
            ("kafka.ssl_ca_file", &self.ssl_ca_file),
            ("kafka.ssl_certificate_file", &self.ssl_certificate_file),
            ("kafka.ssl_key_file", &self.ssl_key_file),
        ];
        for (key, path) in tls_keys {
            check_readable_file(key, path, p);
            if !path.is_empty() && !self.uses_tls() && protocol_known {
                p.push(format!(
                    "{key}: set but kafka.security_protocol is {protocol:?}: use ssl or sasl_ssl"
                ));
            }
        }
        if self.ssl_certificate_file.is_empty() != self.ssl_key_file.is_empty() {
            p.push(
                "kafka.ssl_certificate_file: the client certificate and kafka.ssl_key_file \
                 go together; set both or neither"
                    .to_owned(),
            );
        }
        if !self.ssl_key_password.is_empty() && self.ssl_key_file.is_empty() {
            p.push("kafka.ssl_key_password: set without kafka.ssl_key_file".to_owned());
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub readings: String,
    pub dead_letter: String,
    /// One record per anomaly (the anomaly row as JSON).
    pub anomalies: String,
    /// Alert episode events, activated and resolved (SPEC section 8).
    pub alerts: String,
    /// Of the topics `run` and `generate` create (librdkafka takes an i32).
    pub partitions: i32,
}

impl TopicSettings {
    pub(super) const RULES: Rules = &[("partitions", Rule::Integer(1..=10_000))];

    fn check(&self, p: &mut Problems) {
        for (key, topic) in [
            ("kafka.topics.readings", &self.readings),
            ("kafka.topics.dead_letter", &self.dead_letter),
            ("kafka.topics.anomalies", &self.anomalies),
            ("kafka.topics.alerts", &self.alerts),
        ] {
            if !is_topic_name(topic) {
                p.push(format!(
                    "{key}: {topic:?} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)"
                ));
            }
        }
        // The processor would read its own output as readings (and reject every record of it,
        // dead-lettering it again).
        for (key, topic) in [
            ("kafka.topics.dead_letter", &self.dead_letter),
            ("kafka.topics.anomalies", &self.anomalies),
            ("kafka.topics.alerts", &self.alerts),
        ] {
            if topic == &self.readings {
                p.push(format!(
                    "{key}: {topic:?} is also kafka.topics.readings; an output topic must differ \
                     from the readings topic"
                ));
            }
        }
    }
}

fn is_topic_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
