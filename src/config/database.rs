//! `[database]`: where PostgreSQL is, the credentials and TLS, and the writers' pool.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{check_readable_file, choice, millis, Problems, Rule, Rules};
use super::secret::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    /// A file holding the URL (a docker secret); read at load, into `url`.
    pub url_file: String,
    /// Replaces the password of `url` when set (so the URL can sit in a plain config file).
    pub password: Secret,
    pub password_file: String,
    /// libpq's sslmode; [`SslMode::Unset`] = what the URL (or libpq's default, prefer) says.
    pub sslmode: SslMode,
    /// CA certificate file (PEM) for sslmode verify-ca and verify-full.
    pub sslrootcert: String,
    /// Connections in the writers' pool (r2d2 counts them in u32).
    pub pool_size: u32,
    /// How long to wait for a connection before counting PostgreSQL as unreachable.
    #[serde(with = "millis")]
    pub connect_timeout_ms: Duration,
}

choice! {
    /// libpq's sslmodes, weakest first, or none given (the empty string).
    pub enum SslMode {
        /// Empty: what the URL says, else libpq's default (prefer).
        Unset = "",
        Disable = "disable",
        Allow = "allow",
        Prefer = "prefer",
        Require = "require",
        VerifyCa = "verify-ca",
        VerifyFull = "verify-full",
    }
    note = "";
}

impl SslMode {
    /// The sslmodes the error lists (the empty one is said in words).
    const NAMED: super::rules::Choices = super::rules::Choices {
        names: &[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ],
        aliases: &[""],
        note: " (or empty: the URL's or libpq's default)",
    };
}

impl DatabaseSettings {
    pub(super) const RULES: Rules = &[
        ("sslmode", Rule::Choice(&SslMode::NAMED)),
        ("pool_size", Rule::Integer(1..=100)),
        ("connect_timeout_ms", Rule::Integer(100..=600_000)),
    ];

    /// The URL's scheme, and the TLS keys against the URL's own parameters.
    pub(super) fn check(&self, p: &mut Problems) {
        let url = self.url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.push(format!(
                "database.url: {} must start with postgres:// or postgresql://",
                self.url
            ));
        }
        check_readable_file("database.sslrootcert", &self.sslrootcert, p);
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        for (key, value) in [
            ("sslmode", self.sslmode.as_str()),
            ("sslrootcert", self.sslrootcert.as_str()),
        ] {
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
}
