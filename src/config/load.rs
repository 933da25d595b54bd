//! Loading: the layers merged (defaults, the user's file, the environment), the merged tree
//! walked against the schema (`config/default.toml`) for unknown keys and mistyped values, each
//! value held to its rule, the tree made typed, the secret files read and the keys judged
//! together. Every problem is collected on the way, so `check-config` lists them all at once.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Value, ValueKind};

use super::rules::{check_tree, Problems};
use super::secret::{read_secret_file, Secret};
use super::{env_name, ConfigError, Settings, DEFAULT_TOML};

/// Prefix of the environment variables that override keys (`HEARTBEAT__KAFKA__BROKERS`).
pub(super) const ENV_PREFIX: &str = "HEARTBEAT";
/// Separator between the prefix, sections and keys in those variables.
pub(super) const ENV_SEPARATOR: &str = "__";
/// How the `config` crate labels values that came from the environment.
const ENV_ORIGIN: &str = "the environment";

/// Keys that are valid but have no default (so they are absent from `default.toml`).
pub(super) const OPTIONAL_KEYS: &[(&str, Kind)] = &[("generator.seed", Kind::Integer)];
/// Tables whose keys are free-form (every value a string).
pub(super) const FREE_FORM_TABLES: &[&str] = &["kafka.librdkafka"];

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
        let mut tree = normalize(&schema.cache, &merged.cache, "", &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Each value against its rule; a refused one is set back to its default, so the rest
        // still becomes typed and is judged together.
        let defaults = normalize(&schema.cache, &schema.cache, "", &mut Vec::new());
        let mut judged = Problems::default();
        check_tree(Settings::SECTIONS, &mut tree, &defaults, &mut judged);
        let mut settings: Settings = serde_json::from_value(tree)
            .map_err(|e| ConfigError::one(format!("configuration does not fit: {e}")))?;
        let mut problems = settings.read_secret_files();
        settings.check(&mut judged);
        problems.extend(judged.list);
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

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }
}

/// `database.url` of the built-in defaults.
fn default_database_url() -> Option<String> {
    let defaults: toml::Value = toml::from_str(DEFAULT_TOML).ok()?;
    Some(defaults.get("database")?.get("url")?.as_str()?.to_owned())
}

/// The type a key must have, as the default file (or [`OPTIONAL_KEYS`]) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Boolean,
    Integer,
    Float,
    String,
    Table,
}

impl Kind {
    pub(super) fn of(value: &ValueKind) -> Option<Kind> {
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
pub(super) fn normalize(
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

pub(super) fn join(path: &str, key: &str) -> String {
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
