//! What each key's value must be, declared beside its section's fields (a table of [`Rule`]s
//! per settings struct), and the check that holds the merged tree to them before it becomes
//! typed: a value out of its range or not among its choices is named with its key, and every
//! such problem is found in one pass. Also what the sections share: durations in milliseconds
//! ([`millis`]), closed sets of strings as enums ([`choice!`]) and the checks of a readable file
//! and of host:port.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::Path;

/// What the value of a key must be. The type itself (integer, number, string) is the schema's
/// business (`config/default.toml`); this is what the value must mean.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// An integer in this range, both ends included.
    Integer(RangeInclusive<i64>),
    /// A number (float) of this kind.
    Number(NumberRange),
    /// One of a closed set of strings.
    Choice(&'static Choices),
}

/// A section's rules: each key (relative to the section) with its [`Rule`].
pub type Rules = &'static [(&'static str, Rule)];

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

/// The values a string key may take, as the enum made by [`choice!`] spells them.
#[derive(Debug, PartialEq, Eq)]
pub struct Choices {
    /// The values, as the error lists them.
    pub names: &'static [&'static str],
    /// Other spellings accepted for one of them, not listed.
    pub aliases: &'static [&'static str],
    /// Said after the list, e.g. what an empty value means.
    pub note: &'static str,
}

impl Choices {
    fn allows(&self, value: &str) -> bool {
        self.names.contains(&value) || self.aliases.contains(&value)
    }

    fn describe(&self) -> String {
        match self.names {
            [a, b] => format!("{a} or {b}{}", self.note),
            names => format!("one of {}{}", names.join(", "), self.note),
        }
    }
}

impl Rule {
    /// The problem with `value` (of `key`), if any.
    fn problem(&self, key: &str, value: &serde_json::Value) -> Option<String> {
        match self {
            Rule::Integer(range) => {
                let n = value.as_i64()?;
                (!range.contains(&n)).then(|| {
                    format!(
                        "{key}: {n} is out of range {}..={}",
                        range.start(),
                        range.end()
                    )
                })
            }
            Rule::Number(range) => {
                let f = value.as_f64()?;
                (!range.contains(f)).then(|| format!("{key}: {f} must be {}", range.describe()))
            }
            Rule::Choice(choices) => {
                let s = value.as_str()?;
                (!choices.allows(s)).then(|| format!("{key}: {s:?} must be {}", choices.describe()))
            }
        }
    }
}

/// The problems found so far, and which keys were refused for their own value (their
/// relations to other keys are not judged then: the value they would be judged by is not the
/// one given).
#[derive(Debug, Default)]
pub struct Problems {
    pub list: Vec<String>,
    refused: BTreeSet<String>,
}

impl Problems {
    pub fn push(&mut self, problem: String) {
        self.list.push(problem);
    }

    /// Whether every one of `keys` holds a value of its own rule, so a relation between them
    /// can be judged.
    pub fn judged(&self, keys: &[&str]) -> bool {
        keys.iter().all(|k| !self.refused.contains(*k))
    }
}

/// Every `(section, rules)` pair, the dotted key of each rule being `section.key`.
pub type Sections = &'static [(&'static str, Rules)];

/// Holds every value of `tree` that a rule of `sections` covers to that rule. A refused value
/// is replaced by its default from `defaults` (or removed, for an optional key), so the tree
/// still becomes typed settings and the relations between the other keys are still judged.
pub fn check_tree(
    sections: Sections,
    tree: &mut serde_json::Value,
    defaults: &serde_json::Value,
    p: &mut Problems,
) {
    for (section, rules) in sections {
        for (name, rule) in rules.iter() {
            let key = format!("{section}.{name}");
            let Some(table) = lookup_mut(tree, section) else {
                continue;
            };
            let Some(value) = table.get(*name) else {
                continue;
            };
            let Some(problem) = rule.problem(&key, value) else {
                continue;
            };
            p.push(problem);
            p.refused.insert(key.clone());
            match lookup(defaults, &key) {
                Some(default) => table.insert((*name).to_owned(), default.clone()),
                None => table.remove(*name),
            };
        }
    }
}

fn lookup<'v>(tree: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(tree, |v, k| v.get(k))
}

fn lookup_mut<'v>(
    tree: &'v mut serde_json::Value,
    path: &str,
) -> Option<&'v mut serde_json::Map<String, serde_json::Value>> {
    path.split('.')
        .try_fold(tree, |v, k| v.get_mut(k))?
        .as_object_mut()
}

/// Every key of `sections` whose rule `pick` takes, with what it takes from it.
pub fn keys_of<T>(sections: Sections, pick: impl Fn(&Rule) -> Option<T>) -> Vec<(String, T)> {
    sections
        .iter()
        .flat_map(|(section, rules)| {
            rules
                .iter()
                .filter_map(|(name, rule)| Some((format!("{section}.{name}"), pick(rule)?)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A problem when `path` (the value of `key`) is set but is not a readable file.
pub fn check_readable_file(key: &str, path: &str, p: &mut Problems) {
    if path.is_empty() {
        return;
    }
    if let Err(e) = std::fs::File::open(path) {
        p.push(format!("{key}: cannot read {path}: {e}"));
    } else if !Path::new(path).is_file() {
        p.push(format!("{key}: {path} is not a file"));
    }
}

pub fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// A duration key, in whole milliseconds in the configuration (`*_ms`) and a [`Duration`]
/// in the program: `#[serde(with = "millis")]`. Negative values never reach it (their rule
/// refuses them first).
///
/// [`Duration`]: std::time::Duration
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A closed set of strings as an enum: the variants with their spelling in the configuration
/// (and any other accepted spelling), its [`Choices`] for the check, `as_str`, and serde both
/// ways by that spelling.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)?
        }
        note = $note:literal;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// The values the configuration may give, for the check of the key.
            pub const CHOICES: $crate::config::rules::Choices = $crate::config::rules::Choices {
                names: &[$($text),+],
                aliases: &[$($($alias,)*)+],
                note: $note,
            };

            /// As the configuration spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text $(| $alias)* => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{s:?} is not one of {}",
                        Self::CHOICES.names.join(", ")
                    ))
                })
            }
        }
    };
}
pub(crate) use choice;
