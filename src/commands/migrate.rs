//! `migrate`: applies pending migrations and exits.

use slog::{error, info, Logger};

use super::exit;
use crate::config::Settings;
use crate::db;

pub fn migrate(settings: &Settings, log: &Logger) -> i32 {
    let result = db::connect(&settings.database).and_then(|mut conn| db::migrate(&mut conn));
    match result {
        Ok(applied) => {
            info!(log, "migrations applied"; "count" => applied.len(), "versions" => applied.join(","));
            println!(
                "database {} is up to date ({} migration(s) applied now)",
                db::target(&settings.database.url),
                applied.len()
            );
            exit::OK
        }
        Err(e) => {
            error!(log, "migration failed"; "error" => %e);
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}
