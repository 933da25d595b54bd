//! `inspect`: a database summary for operators: counts, classes, anomalies by kind, open alerts
//! (all, activated, pending), the alert burden, alert delivery (episode events written, pending,
//! acknowledged per receiver), rejects by reason, top customers by anomalies, newest reading.

use slog::{error, Logger};

use super::exit;
use crate::config::Settings;
use crate::db::{self, queries};

fn section(title: &str, rows: &[queries::LabelCount]) {
    println!("\n{title}");
    if rows.is_empty() {
        println!("  (none)");
    }
    for r in rows {
        println!("  {:<24} {:>12}", r.label, r.n);
    }
}

pub fn inspect(settings: &Settings, log: &Logger) -> i32 {
    let summary = db::connect(&settings.database).and_then(|mut c| queries::summary(&mut c));
    let s = match summary {
        Ok(s) => s,
        Err(e) => {
            error!(log, "inspect failed"; "error" => %e);
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    let t = &s.totals;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
            .unwrap_or_else(|| "-".to_owned())
    };
    println!("database {}", db::target(&settings.database.url));
    println!("  readings                 {:>12}", t.readings);
    println!("  rejected readings        {:>12}", t.rejected);
    println!("  anomalies                {:>12}", t.anomalies);
    println!("  open alerts              {:>12}", t.open_alerts);
    println!("  customers                {:>12}", t.customers);
    // Share of the customers with readings; `max(1)`: no division by zero on an empty database.
    let share = 100.0 * t.paged_customers as f64 / t.customers.max(1) as f64;
    println!(
        "  customers paged          {:>12}  ({share:.1}% of customers: an activated open alert)",
        t.paged_customers
    );
    println!("  newest reading           {}", time(t.newest));
    println!("  newest ingested          {}", time(t.newest_ingested));
    section("readings by class", &s.classes);
    section("anomalies by kind", &s.anomalies);
    section("open alerts by kind", &s.open_alerts);
    section("activated open alerts by kind", &s.activated_alerts);
    section(
        "pending open alerts by kind (opened, not activated yet)",
        &s.pending_alerts,
    );
    let b = &s.burden;
    println!("\nalert burden (the 24 h of reading time up to the newest reading)");
    println!("  activated episodes       {:>12}", b.activated);
    println!("  customers with readings  {:>12}", b.customers);
    println!("  hours covered            {:>12.2}", b.days * 24.0);
    println!(
        "  customer-days            {:>12.3}",
        b.customers as f64 * b.days
    );
    match b.per_customer_day {
        Some(x) => println!("  per customer-day         {x:>12.3}"),
        None => println!("  per customer-day         {:>12}", "-"),
    }
    section(
        "alert delivery (activated and resolved events, SPEC section 8)",
        &s.delivery,
    );
    section("rejects by reason", &s.rejects);
    section("top customers by anomalies", &s.top_customers);
    exit::OK
}
