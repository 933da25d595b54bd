//! `heartbeat-pipeline rules` as an operator meets it: per-customer thresholds, mutes and notes
//! in `alert_rules`, every bad value refused with exit 2 and its rule named, nothing written,
//! and a database that cannot be reached exits 1. Only the table is tested here; how the
//! detector applies the rules is tested with the detector.

use std::process::Output;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use crate::helpers::*;

fn rules(setup: &Setup, args: &[&str]) -> Output {
    let mut all = vec!["rules"];
    all.extend_from_slice(args);
    setup.command(&all).output().expect("run rules")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(setup: &Setup, args: &[&str]) -> String {
    let out = rules(setup, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One text value of a query (`v`), or None for SQL null.
fn value(db: &TestDb, sql: &str) -> Option<String> {
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = Nullable<Text>)]
        v: Option<String>,
    }
    let row: V = diesel::sql_query(sql)
        .get_result(&mut db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.v
}

/// The whole table as text, to prove a refused command changed nothing.
fn table(db: &TestDb) -> Option<String> {
    value(
        db,
        "SELECT string_agg(row_to_json(r)::text, E'\\n' ORDER BY customer_id) AS v \
         FROM alert_rules r",
    )
}

fn migrated() -> (TestDb, Setup) {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    (db, setup)
}

#[test]
fn set_merges_with_the_stored_rules_and_show_and_list_print_them() {
    let (db, setup) = migrated();
    let shown = ok(&setup, &["show", "CUST-7"]);
    assert!(
        shown.contains("no rules of its own") && shown.contains("fleet bands"),
        "{shown}"
    );
    assert!(ok(&setup, &["list"]).contains("no customer has rules of its own"));

    let out = ok(
        &setup,
        &["set", "CUST-7", "--low-below", "45", "--note", "athlete"],
    );
    assert!(out.contains("rules written"), "{out}");
    // Unset flags keep their value.
    ok(&setup, &["set", "CUST-7", "--high-above", "110"]);
    let row = value(
        &db,
        "SELECT concat_ws(',', coalesce(critical_low_below::text, 'null'), low_below, \
         high_above, coalesce(critical_high_above::text, 'null'), note) AS v \
         FROM alert_rules WHERE customer_id = 'CUST-7'",
    );
    assert_eq!(row.as_deref(), Some("null,45,110,null,athlete"));
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM alert_rules WHERE updated_by <> '' AND updated_at <= now()"
        ),
        1
    );

    let shown = ok(&setup, &["show", "CUST-7"]);
    for line in [
        "critical_low_below       40  fleet band",
        "low_below                45  its own",
        "high_above              110  its own",
        "critical_high_above     180  fleet band",
        "note                  athlete",
    ] {
        assert!(shown.contains(line), "{line:?} not in\n{shown}");
    }
    ok(&setup, &["set", "other:9", "--critical-high-above", "200"]);
    let listed = ok(&setup, &["list"]);
    assert!(listed.starts_with("2 customer(s)"), "{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[2].starts_with("CUST-7") && lines[2].contains("athlete"),
        "{listed}"
    );
    assert!(
        lines[3].starts_with("other:9") && lines[3].contains("200"),
        "{listed}"
    );

    // `fleet` puts one threshold back; an empty note removes the note.
    ok(
        &setup,
        &["set", "CUST-7", "--low-below", "fleet", "--note", ""],
    );
    let row = value(
        &db,
        "SELECT concat_ws(',', coalesce(low_below::text, 'null'), high_above, \
         coalesce(note, 'null')) AS v FROM alert_rules WHERE customer_id = 'CUST-7'",
    );
    assert_eq!(row.as_deref(), Some("null,110,null"));
}

#[test]
fn mute_for_or_until_then_unmute_and_clear() {
    let (db, setup) = migrated();
    ok(&setup, &["mute", "CUST-1", "--for", "90m"]);
    let ahead = db.count(
        "SELECT extract(epoch FROM muted_until - now())::bigint AS n FROM alert_rules \
         WHERE customer_id = 'CUST-1'",
    );
    assert!((90 * 60 - 60..=90 * 60).contains(&ahead), "{ahead} s ahead");
    assert!(ok(&setup, &["show", "CUST-1"]).contains("from now"));

    let until = (chrono::Utc::now() + chrono::Duration::hours(5))
        .format("%Y-%m-%dT%H:%M:%S+01:00")
        .to_string();
    ok(&setup, &["mute", "CUST-1", "--until", &until]);
    let want = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM alert_rules WHERE customer_id = 'CUST-1' \
             AND muted_until = '{}'",
            want.to_rfc3339()
        )),
        1
    );

    let out = ok(&setup, &["unmute", "CUST-1"]);
    assert!(out.contains("unmuted"), "{out}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM alert_rules WHERE muted_until IS NULL"),
        1
    );
    assert!(ok(&setup, &["unmute", "CUST-1"]).contains("was not muted"));

    let out = ok(&setup, &["clear", "CUST-1"]);
    assert!(out.contains("rules cleared"), "{out}");
    assert_eq!(db.count("SELECT count(*) AS n FROM alert_rules"), 0);
    assert!(ok(&setup, &["clear", "CUST-1"]).contains("nothing changed"));
}

#[test]
fn bad_values_exit_2_name_the_rule_and_write_nothing() {
    let (db, setup) = migrated();
    ok(
        &setup,
        &["set", "CUST-1", "--low-below", "45", "--note", "athlete"],
    );
    ok(&setup, &["mute", "CUST-1", "--for", "2h"]);
    let before = table(&db);
    for (args, words) in [
        // Out of range (validation.min_heart_rate..=validation.max_heart_rate).
        (
            vec!["set", "CUST-1", "--high-above", "251"],
            vec![
                "--high-above 251",
                "validation.min_heart_rate..=validation.max_heart_rate",
            ],
        ),
        (
            vec!["set", "CUST-1", "--critical-low-below", "19"],
            vec!["--critical-low-below 19", "outside"],
        ),
        (
            vec!["set", "CUST-1", "--low-below", "lots"],
            vec!["--low-below \"lots\": not a whole number"],
        ),
        // Out of order, against the stored rule and against a fleet band; for a customer with
        // no rules too (no empty row may stay behind).
        (
            vec!["set", "CUST-1", "--critical-low-below", "50"],
            vec![
                "must be in order",
                "--critical-low-below 50",
                "low_below 45 (stored rule)",
            ],
        ),
        (
            vec!["set", "CUST-1", "--high-above", "190"],
            vec![
                "must be in order",
                "critical_high_above 180 (fleet band detector.bands.critical_high_above)",
            ],
        ),
        (
            vec!["set", "CUST-2", "--low-below", "30"],
            vec!["must be in order", "--low-below 30"],
        ),
        (
            vec!["set", "CUST-2", "--high-above", "70", "--low-below", "70"],
            vec!["--low-below 70 is not below --high-above 70"],
        ),
        // Durations and times.
        (
            vec!["mute", "CUST-1", "--for", "90x"],
            vec!["--for \"90x\": not a duration"],
        ),
        (
            vec!["mute", "CUST-1", "--for", "90"],
            vec!["not a duration"],
        ),
        (
            vec!["mute", "CUST-1", "--for", "400d"],
            vec!["longest mute"],
        ),
        (
            vec!["mute", "CUST-1", "--until", "2020-01-01T00:00:00Z"],
            vec!["--until", "not in the future"],
        ),
        (
            vec!["mute", "CUST-1", "--until", "next tuesday"],
            vec!["not an RFC 3339 time"],
        ),
        // Customer ids by the readings' rule.
        (
            vec!["set", "CUST 1", "--low-below", "45"],
            vec!["customer id \"CUST 1\"", "A-Z a-z 0-9 _ - . :"],
        ),
        (
            vec!["mute", "x'); DROP TABLE alert_rules;--", "--for", "1h"],
            vec!["customer id"],
        ),
        (
            vec!["show", &"c".repeat(65)],
            vec!["longer than 64 characters"],
        ),
        (vec!["clear", ""], vec!["customer id is empty"]),
        // Usage: a set with nothing to set, a mute with both or neither end.
        (vec!["set", "CUST-1"], vec!["required arguments"]),
        (vec!["mute", "CUST-1"], vec!["required arguments"]),
        (
            vec![
                "mute",
                "CUST-1",
                "--for",
                "1h",
                "--until",
                "2030-01-01T00:00:00Z",
            ],
            vec!["cannot be used with"],
        ),
    ] {
        let out = rules(&setup, &args);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        for w in words {
            assert!(shown.contains(w), "{args:?}: {w:?} not in {shown}");
        }
        assert_eq!(table(&db), before, "{args:?} changed alert_rules");
    }
    // Every problem at once.
    let out = rules(
        &setup,
        &[
            "set",
            "bad id",
            "--low-below",
            "5",
            "--note",
            &"n".repeat(1001),
        ],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    for w in ["customer id", "--low-below 5", "--note: longer than 1000"] {
        assert!(shown.contains(w), "{w:?} not in {shown}");
    }
    assert_eq!(table(&db), before);
}

#[test]
fn a_database_that_cannot_be_reached_exits_1() {
    let db = TestDb::new();
    let mut setup = Setup::new(&db);
    // A port nothing listens on.
    setup.db_url = "postgres://postgres:postgres@127.0.0.1:1/nowhere".to_owned();
    let setup = setup.with("HEARTBEAT__DATABASE__CONNECT_TIMEOUT_MS", "1000");
    for args in [
        vec!["list"],
        vec!["set", "CUST-1", "--low-below", "45"],
        vec!["mute", "CUST-1", "--for", "1h"],
    ] {
        let out = rules(&setup, &args);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {shown}");
        assert!(
            shown.contains("failed to connect to postgres at 127.0.0.1:1"),
            "{shown}"
        );
    }
}

#[test]
fn a_database_without_the_table_says_to_migrate() {
    let db = TestDb::new();
    let out = rules(&Setup::new(&db), &["show", "CUST-1"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("run `heartbeat-pipeline migrate`"),
        "{shown}"
    );
}

/// A login of a test's own in `group`, dropped at the end.
struct Login(String);

impl Login {
    fn create(group: &str) -> Login {
        let name = unique("hb_rules_login");
        let mut admin = PgConnection::establish(&admin_url()).unwrap();
        diesel::sql_query(format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'pw' IN ROLE {group}"
        ))
        .execute(&mut admin)
        .unwrap();
        Login(name)
    }

    fn url(&self, db: &TestDb) -> String {
        let (_, rest) = db.url.split_once('@').unwrap();
        format!("postgres://{}:pw@{rest}", self.0)
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ =
                diesel::sql_query(format!("DROP ROLE IF EXISTS {}", self.0)).execute(&mut admin);
        }
    }
}

#[test]
fn a_rules_login_writes_the_rules_and_the_processors_writer_only_reads_them() {
    let (db, owner) = migrated();
    let (editor, writer) = (
        Login::create("heartbeat_rules"),
        Login::create("heartbeat_writer"),
    );
    let mut as_editor = owner.clone();
    as_editor.db_url = editor.url(&db);
    let mut as_writer = owner.clone();
    as_writer.db_url = writer.url(&db);

    ok(&as_editor, &["set", "CUST-1", "--low-below", "45"]);
    ok(&as_editor, &["mute", "CUST-1", "--for", "1h"]);
    // updated_by names the database login.
    assert!(value(&db, "SELECT updated_by AS v FROM alert_rules")
        .unwrap()
        .ends_with(&editor.0));
    // The editor reaches nothing else.
    let mut c = PgConnection::establish(&editor.url(&db)).unwrap();
    assert!(diesel::sql_query("SELECT count(*) FROM readings")
        .execute(&mut c)
        .is_err());

    // The writer reads the rules (show) but may not change them.
    assert!(ok(&as_writer, &["show", "CUST-1"]).contains("its own"));
    let before = table(&db);
    for args in [
        vec!["set", "CUST-1", "--low-below", "50"],
        vec!["unmute", "CUST-1"],
        vec!["clear", "CUST-1"],
    ] {
        let out = rules(&as_writer, &args);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {shown}");
        assert!(
            shown.contains("permission denied") && shown.contains("heartbeat_rules"),
            "{shown}"
        );
    }
    assert_eq!(table(&db), before);
}

#[test]
fn every_rules_subcommand_takes_version_and_config() {
    let (db, setup) = migrated();
    for sub in ["list", "show", "set", "mute", "unmute", "clear"] {
        let out = setup
            .command(&["rules", sub, "--version"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    // --config layers a file as for every command: here fleet bands that make 45 out of order.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, b"[detector.bands]\ncritical_low_below = 50\n").unwrap();
    let path = f.into_temp_path();
    let out = setup
        .command(&["rules", "set", "CUST-1", "--low-below", "45", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("critical_low_below 50 (fleet band"),
        "{shown}"
    );
    assert_eq!(table(&db), None);
}
