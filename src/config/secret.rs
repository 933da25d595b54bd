//! Secrets: the [`Secret`] wrapper that never prints its value, the scrubbing of secrets from
//! messages the program does not word itself, and which librdkafka properties hold one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

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
        url_without_password(&self.0).unwrap_or_else(|| "<redacted>".to_owned())
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

/// `url` with the password of its user info (and any query naming a password) hidden; a value
/// that is not a URL is given back as it is.
pub(super) fn redact_url_password(url: &str) -> String {
    url_without_password(url).unwrap_or_else(|| url.to_owned())
}

fn url_without_password(url: &str) -> Option<String> {
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

pub(super) fn serialize_librdkafka<S: Serializer>(
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

/// The content of a secret file, without the line break editors and `echo` leave at its end.
/// The error says why it cannot be read (never what it holds).
pub(super) fn read_secret_file(path: &str) -> Result<String, String> {
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
