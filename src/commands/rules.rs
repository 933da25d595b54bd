//! `rules`: per-customer alert rules (SPEC sections 2 and 5, table `alert_rules`): list them,
//! show one customer's, set thresholds and a note, mute, unmute, clear.
//!
//! Every value is checked before anything is written (`domain::rules`): what can be judged alone
//! (the customer id, a threshold's number and range, a duration, a time, a note) before the
//! database is even asked, the order of the thresholds against the stored row and the fleet bands
//! inside the transaction that writes, which rolls back on a refusal. A refused value exits 2
//! with every problem named (its flag and rule), and nothing is written; a database that cannot
//! be reached, or refuses the login, exits 1. The checks use this command's configuration
//! (`validation.*`, `detector.bands.*`): run it with the processors' configuration.
//!
//! `updated_by` is the database login (`session_user`), preceded by the operating system's user
//! (`$USER`, else `$LOGNAME`) when there is one that differs: `alice via heartbeat_oncall`. The
//! login is what the database vouches for; the OS user says who sat at a shared login.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use slog::{error, info, Logger};

use super::exit;
use crate::cli::{MuteArgs, RulesCommand, SetArgs};
use crate::config::Settings;
use crate::db::models::AlertRule;
use crate::db::queries::rules::{self as q, RuleValues};
use crate::db::{self, DbError};
use crate::domain::classification::Bands;
use crate::domain::rules::{
    check_customer_id, check_note, human_duration, merge_thresholds, mute_until, out_of_order,
    parse_threshold, Limits, MuteSpec, Refused, ThresholdKey,
};

/// Why a `rules` command did not do what it was asked.
#[derive(Debug, thiserror::Error)]
enum RulesError {
    /// A value broke a rule: exit 2, nothing written.
    #[error("{0}")]
    Refused(#[from] Refused),
    /// The database could not be reached or did not do it: exit 1.
    #[error("{source}{}", hint(source))]
    Db {
        #[from]
        source: DbError,
    },
}

impl From<diesel::result::Error> for RulesError {
    /// The transaction's own begin or commit.
    fn from(source: diesel::result::Error) -> Self {
        RulesError::Db {
            source: DbError::Query {
                op: "run the alert_rules transaction",
                source,
            },
        }
    }
}

/// What helps an operator past the database errors this command meets.
fn hint(e: &DbError) -> &'static str {
    let text = e.to_string();
    if text.contains("alert_rules\" does not exist") {
        " (the database lacks table alert_rules: run `heartbeat-pipeline migrate` as its owner)"
    } else if text.contains("permission denied") {
        " (this login may not change alert rules: use a login in role heartbeat_rules, or the \
         owner; see docs/SECURITY.md)"
    } else {
        ""
    }
}

pub fn rules(settings: &Settings, command: &RulesCommand, log: &Logger) -> i32 {
    let limits = Limits {
        min_heart_rate: i64::from(settings.validation.min_heart_rate),
        max_heart_rate: i64::from(settings.validation.max_heart_rate),
        fleet: Bands::from(&settings.detector.bands),
    };
    match run(settings, command, &limits, log) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(RulesError::Refused(refused)) => {
            eprintln!("error: {refused}");
            exit::USAGE
        }
        Err(e) => {
            error!(log, "rules failed"; "error" => %e);
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

fn run(
    settings: &Settings,
    command: &RulesCommand,
    limits: &Limits,
    log: &Logger,
) -> Result<String, RulesError> {
    // Everything that can be judged alone is judged before the database is asked.
    precheck(command, limits)?;
    let mut conn = db::connect(&settings.database)?;
    let now = Utc::now();
    match command {
        RulesCommand::List => Ok(list(&q::list_rules(&mut conn)?, limits, now)),
        RulesCommand::Show { customer } => {
            let rule = q::find_rule(&mut conn, customer)?;
            Ok(show(customer, rule.as_ref(), limits, now))
        }
        RulesCommand::Set(args) => set(&mut conn, args, limits, now, log),
        RulesCommand::Mute(args) => mute(&mut conn, args, limits, now, log),
        RulesCommand::Unmute { customer } => {
            let by = updated_by(&mut conn)?;
            Ok(match q::unmute(&mut conn, customer, &by)? {
                Some(rule) => {
                    info!(log, "customer unmuted"; "customer_id" => customer.as_str(), "by" => &by);
                    format!(
                        "{customer}: unmuted\n{}",
                        show(customer, Some(&rule), limits, now)
                    )
                }
                None => format!("{customer} was not muted; nothing changed\n"),
            })
        }
        RulesCommand::Clear { customer } => Ok(match q::clear_rule(&mut conn, customer)? {
            Some(_) => {
                info!(log, "customer rules cleared"; "customer_id" => customer.as_str());
                format!(
                    "{customer}: rules cleared\n{}",
                    show(customer, None, limits, now)
                )
            }
            None => format!("{customer} had no rules of its own; nothing changed\n"),
        }),
    }
}

/// The thresholds a `set` gives, by key, as typed.
fn changes(args: &SetArgs) -> Vec<(ThresholdKey, &str)> {
    [
        (ThresholdKey::CriticalLowBelow, &args.critical_low_below),
        (ThresholdKey::LowBelow, &args.low_below),
        (ThresholdKey::HighAbove, &args.high_above),
        (ThresholdKey::CriticalHighAbove, &args.critical_high_above),
    ]
    .into_iter()
    .filter_map(|(key, text)| text.as_deref().map(|t| (key, t)))
    .collect()
}

fn mute_spec(args: &MuteArgs) -> MuteSpec<'_> {
    match (&args.duration, &args.until) {
        (Some(d), _) => MuteSpec::For(d),
        // clap requires exactly one of the two.
        (None, u) => MuteSpec::Until(u.as_deref().unwrap_or("")),
    }
}

/// The checks that need no stored row, every problem at once.
fn precheck(command: &RulesCommand, limits: &Limits) -> Result<(), Refused> {
    let mut problems = Vec::new();
    let customer = match command {
        RulesCommand::List => None,
        RulesCommand::Show { customer }
        | RulesCommand::Unmute { customer }
        | RulesCommand::Clear { customer } => Some(customer),
        RulesCommand::Set(args) => Some(&args.customer),
        RulesCommand::Mute(args) => Some(&args.customer),
    };
    if let Some(customer) = customer {
        problems.extend(check_customer_id(customer).err());
    }
    match command {
        RulesCommand::Set(args) => {
            for (key, text) in changes(args) {
                problems.extend(parse_threshold(key, text, limits).err());
            }
            if let Some(note) = &args.note {
                problems.extend(check_note(note).err());
            }
        }
        RulesCommand::Mute(args) => {
            problems.extend(mute_until(mute_spec(args), Utc::now()).err());
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refused { problems })
    }
}

fn set(
    conn: &mut PgConnection,
    args: &SetArgs,
    limits: &Limits,
    now: DateTime<Utc>,
    log: &Logger,
) -> Result<String, RulesError> {
    let by = updated_by(conn)?;
    let note = match &args.note {
        Some(text) => Some(check_note(text).map_err(|p| Refused { problems: vec![p] })?),
        None => None,
    };
    let rule = q::change_rule(conn, &args.customer, |conn, stored| {
        let stored = stored
            .as_ref()
            .map(AlertRule::thresholds)
            .unwrap_or_default();
        let merged = merge_thresholds(&stored, &changes(args), limits)?;
        // Within validation.*_heart_rate, which are smallints: every value fits.
        let narrow = |v: Option<i64>| v.and_then(|v| i32::try_from(v).ok());
        let values = RuleValues {
            critical_low_below: narrow(merged.critical_low_below),
            low_below: narrow(merged.low_below),
            high_above: narrow(merged.high_above),
            critical_high_above: narrow(merged.critical_high_above),
            note,
        };
        Ok::<_, RulesError>(q::write_values(conn, &args.customer, &values, &by)?)
    })?;
    info!(log, "customer rules set"; "customer_id" => args.customer.as_str(), "by" => &by);
    Ok(format!(
        "{}: rules written\n{}",
        args.customer,
        show(&args.customer, Some(&rule), limits, now)
    ))
}

fn mute(
    conn: &mut PgConnection,
    args: &MuteArgs,
    limits: &Limits,
    now: DateTime<Utc>,
    log: &Logger,
) -> Result<String, RulesError> {
    let until = mute_until(mute_spec(args), now).map_err(|p| Refused { problems: vec![p] })?;
    let by = updated_by(conn)?;
    let (before, rule) = q::change_rule(conn, &args.customer, |conn, stored| {
        let before = stored.and_then(|r| r.muted_until).filter(|t| *t > now);
        Ok::<_, RulesError>((before, q::write_mute(conn, &args.customer, until, &by)?))
    })?;
    info!(log, "customer muted"; "customer_id" => args.customer.as_str(), "until" => %until,
        "by" => &by);
    let was = before
        .map(|t| format!(" (was until {})", time(t)))
        .unwrap_or_default();
    Ok(format!(
        "{}: muted until {}{was}\n{}",
        args.customer,
        time(until),
        show(&args.customer, Some(&rule), limits, now)
    ))
}

/// Who is changing the rules (see the top of this file).
fn updated_by(conn: &mut PgConnection) -> Result<String, DbError> {
    let login = q::session_user(conn)?;
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .map(|u| {
            u.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|u| !u.is_empty() && *u != login);
    Ok(match os_user {
        Some(user) => format!("{user} via {login}"),
        None => login,
    })
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn fleet_bands(fleet: &Bands) -> String {
    format!(
        "critical_low_below {}, low_below {}, high_above {}, critical_high_above {}",
        fleet.critical_low_below, fleet.low_below, fleet.high_above, fleet.critical_high_above
    )
}

/// A mute as people read it, relative to `now`.
fn muted(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match until {
        Some(t) if t > now => {
            // To the nearest second, so a mute of 90m just given shows as 1h 30m.
            let left = (t - now).to_std().unwrap_or_default();
            let left = std::time::Duration::from_secs((left.as_millis() as u64 + 500) / 1000);
            format!("until {} ({} from now)", time(t), human_duration(left))
        }
        Some(t) => format!("no (the last mute ended {})", time(t)),
        None => "no".to_owned(),
    }
}

/// `rules show`: one customer's effective rules.
fn show(customer: &str, rule: Option<&AlertRule>, limits: &Limits, now: DateTime<Utc>) -> String {
    let Some(rule) = rule else {
        return format!(
            "customer {customer} has no rules of its own: it uses the fleet bands ({}) and is \
             not muted\n",
            fleet_bands(&limits.fleet)
        );
    };
    let own = rule.thresholds();
    let effective = own.effective(&limits.fleet);
    let mut out = String::new();
    let _ = writeln!(out, "customer {customer}");
    for key in ThresholdKey::ALL {
        let value = match key {
            ThresholdKey::CriticalLowBelow => effective.critical_low_below,
            ThresholdKey::LowBelow => effective.low_below,
            ThresholdKey::HighAbove => effective.high_above,
            ThresholdKey::CriticalHighAbove => effective.critical_high_above,
        };
        let whose = if own.get(key).is_some() {
            "its own"
        } else {
            "fleet band"
        };
        let _ = writeln!(out, "  {:<21} {value:>5}  {whose}", key.name());
    }
    let _ = writeln!(out, "  {:<21} {}", "muted", muted(rule.muted_until, now));
    let _ = writeln!(
        out,
        "  {:<21} {}",
        "note",
        rule.note
            .as_deref()
            .unwrap_or("-")
            .replace('\n', &format!("\n{:24}", ""))
    );
    let _ = writeln!(
        out,
        "  {:<21} {} by {}",
        "updated",
        time(rule.updated_at),
        rule.updated_by
    );
    for problem in out_of_order(&own, &limits.fleet) {
        let _ = writeln!(
            out,
            "  warning: {problem} (under the current fleet bands; set the thresholds again, or \
             back to the fleet with `fleet`)"
        );
    }
    out
}

/// `rules list`: every customer with rules of its own, one line each.
fn list(rules: &[AlertRule], limits: &Limits, now: DateTime<Utc>) -> String {
    let fleet = fleet_bands(&limits.fleet);
    if rules.is_empty() {
        return format!(
            "no customer has rules of its own: every customer uses the fleet bands ({fleet})\n"
        );
    }
    let width = rules
        .iter()
        .map(|r| r.customer_id.len())
        .max()
        .unwrap_or(0)
        .max("customer".len());
    let cell = |v: Option<i32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = format!(
        "{} customer(s) with rules of their own; - = the fleet band ({fleet})\n",
        rules.len()
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>18}  {:>9}  {:>10}  {:>19}  {:<23}  {:<23}  {:<20}  note",
        "customer",
        "critical_low_below",
        "low_below",
        "high_above",
        "critical_high_above",
        "muted until",
        "updated",
        "by"
    );
    for r in rules {
        let mute = match r.muted_until {
            Some(t) if t > now => time(t),
            Some(_) => "- (ended)".to_owned(),
            None => "-".to_owned(),
        };
        let mut line = format!(
            "{:<width$}  {:>18}  {:>9}  {:>10}  {:>19}  {:<23}  {:<23}  {:<20}  {}",
            r.customer_id,
            cell(r.critical_low_below),
            cell(r.low_below),
            cell(r.high_above),
            cell(r.critical_high_above),
            mute,
            time(r.updated_at),
            r.updated_by,
            r.note.as_deref().unwrap_or("-").replace('\n', " / ")
        );
        if !out_of_order(&r.thresholds(), &limits.fleet).is_empty() {
            line.push_str("  (out of order under the current fleet bands: see `rules show`)");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
