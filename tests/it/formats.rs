//! The three formats of SPEC section 4 end to end, from an independent producer through the real
//! binary: FHIR R4 Observations and Open mHealth data points land as readings with their
//! customer, time, rate, activity and device; the same reading sent in all three formats is
//! stored once (the first copy wins, the other two are duplicates); what is not a heart rate,
//! or lacks a part, lands in `rejected_readings` with the reason and the part's path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use diesel::sql_types::{Nullable, SmallInt, Text};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(90);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn fhir(id: &str, patient: &str, at: &str, value: &str, extra: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}}]}},"subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"{at}","valueQuantity":{{"value":{value},"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}{extra}}}"#
    )
}

fn omh(id: &str, user: &str, at: &str, value: &str, extra: &str) -> String {
    format!(
        r#"{{"header":{{"id":"{id}","creation_date_time":"{at}","schema_id":{{"namespace":"omh","name":"heart-rate","version":"2.0"}},"user_id":"{user}"}},"body":{{"heart_rate":{{"value":{value},"unit":"beats/min"}},"effective_time_frame":{{"date_time":"{at}"}}{extra}}}}}"#
    )
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    recorded_at: String,
    #[diesel(sql_type = SmallInt)]
    heart_rate: i16,
    #[diesel(sql_type = Nullable<Text>)]
    activity: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    device_id: Option<String>,
}

fn readings(db: &TestDb) -> Vec<Row> {
    diesel::sql_query(
        "SELECT event_id::text, customer_id, \
         to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at, \
         heart_rate, activity, device_id FROM readings ORDER BY customer_id, recorded_at",
    )
    .load(&mut db.conn())
    .expect("read readings")
}

fn row(
    event_id: &str,
    customer: &str,
    at: &str,
    bpm: i16,
    activity: Option<&str>,
    device: Option<&str>,
) -> Row {
    Row {
        event_id: event_id.to_owned(),
        customer_id: customer.to_owned(),
        recorded_at: at.to_owned(),
        heart_rate: bpm,
        activity: activity.map(str::to_owned),
        device_id: device.map(str::to_owned),
    }
}

#[test]
fn fhir_and_open_mhealth_records_land_as_readings_and_one_reading_in_three_formats_is_stored_once()
{
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    let now = now_ms();
    let p = producer();

    // One reading in all three formats, keyed alike (one partition, so the FHIR copy, sent
    // first, is the one stored; the two after it are duplicates).
    let same = "6f1c9a34-0d43-4c6e-9a4b-2a3f3cbd2a11";
    let at = "2026-11-29T12:00:00.250Z";
    let triple = [
        fhir(
            same,
            "TRIPLE",
            at,
            "72",
            r#","device":{"reference":"Device/watch-7"}"#,
        ),
        omh(
            same,
            "TRIPLE",
            "2026-11-29T04:00:00.250-08:00",
            "72.0",
            r#","temporal_relationship_to_physical_activity":"at rest""#,
        ),
        format!(
            r#"{{"event_id":"{}","customer_id":"TRIPLE","timestamp":"2026-11-29T13:00:00.250+01:00","heart_rate":72,"activity":"rest"}}"#,
            same.to_uppercase()
        ),
    ];
    for value in &triple {
        queue_keyed(&p, &setup.topic, "TRIPLE", value, now);
    }
    // Other readings: a FHIR one with a fractional rate at a band edge and an effectivePeriod,
    // an Open mHealth one asleep at a rounded half, and a FHIR one whose id is not a UUID.
    let records = [
        (
            "FHIR-1",
            r#"{"resourceType":"Observation","id":"0b6f8d1e-1c1a-4a43-9f0b-5e2b9b0c7a01","status":"preliminary","code":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"147842"},{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"https://fhir.example.org/r4/Patient/FHIR-1/_history/2"},"effectivePeriod":{"start":"2026-11-29T10:00:00+02:00","end":"2026-11-29T10:01:00+02:00"},"valueQuantity":{"value":100.5,"unit":"bpm"}}"#.to_owned(),
        ),
        (
            "OMH-1",
            omh(
                "9d2c7a55-3b9e-4c1f-8f0e-2a6b1d4c8e77",
                "OMH-1",
                "2026-11-29T03:00:00Z",
                "59.5",
                r#","temporal_relationship_to_sleep":"during sleep""#,
            ),
        ),
        (
            "FHIR-2",
            fhir("heart-rate", "FHIR-2", "2026-11-29T09:00:00Z", "44", r#","device":{"reference":"DeviceMetric/example"}"#),
        ),
    ];
    for (key, value) in &records {
        queue_keyed(&p, &setup.topic, key, value, now);
    }
    // And rejects, each of a format's own rules.
    let rejects = [
        (
            "unsupported_observation",
            "code.coding",
            r#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},"subject":{"reference":"Patient/R1"},"effectiveDateTime":"2026-11-29T12:00:00Z","valueQuantity":{"value":16,"unit":"/min"}}"#.to_owned(),
        ),
        (
            "unsupported_observation",
            "status",
            fhir("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", "R2", at, "72", "").replace("\"final\"", "\"entered-in-error\""),
        ),
        (
            "unsupported_observation",
            "body.heart_rate.unit",
            omh("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633c", "R3", at, "72", "").replace("beats/min", "beat/min"),
        ),
        (
            "missing_field",
            "header.user_id",
            omh("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633d", "R4", at, "72", "").replace(r#","user_id":"R4""#, ""),
        ),
        (
            "wrong_type",
            "valueQuantity.value",
            fhir("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633e", "R5", at, "\"72\"", ""),
        ),
        (
            "invalid_timestamp",
            "effectiveDateTime",
            fhir("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633f", "R6", "2026-11-29", "72", ""),
        ),
        (
            "invalid_event_id",
            "header.id",
            omh("3b9b68a2-e0fd-4bdd-ba85-4127a4e8gggg", "R7", at, "72", ""),
        ),
    ];
    for (_, _, value) in &rejects {
        queue_keyed(&p, &setup.topic, "REJECT", value, now);
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    let produced = (triple.len() + records.len() + rejects.len()) as i64;
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == produced).then_some(())
    });

    assert_eq!(
        readings(&db),
        vec![
            row(
                "0b6f8d1e-1c1a-4a43-9f0b-5e2b9b0c7a01",
                "FHIR-1",
                "2026-11-29T08:00:00.000000Z",
                101,
                None,
                None
            ),
            // Not a UUID id: derived from customer and time (uuid5, computed with Python).
            row(
                "6f4de013-8da0-5ab7-b4aa-223359e27dec",
                "FHIR-2",
                "2026-11-29T09:00:00.000000Z",
                44,
                None,
                None
            ),
            row(
                "9d2c7a55-3b9e-4c1f-8f0e-2a6b1d4c8e77",
                "OMH-1",
                "2026-11-29T03:00:00.000000Z",
                60,
                Some("sleep"),
                None
            ),
            row(
                same,
                "TRIPLE",
                "2026-11-29T12:00:00.250000Z",
                72,
                None,
                Some("watch-7")
            ),
        ]
    );
    for (reason, path, _) in &rejects {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM rejected_readings WHERE reason = '{reason}' \
                 AND detail LIKE '{path}:%'"
            )),
            1,
            "a {reason} reject naming {path}: {:?}",
            db.count("SELECT count(*) AS n FROM rejected_readings")
        );
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM rejected_readings"),
        rejects.len() as i64
    );
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("heartbeat_duplicates_total 2"),
        "{metrics}"
    );
    // DeviceMetric/example is not a device id: the device is unknown, and counted.
    assert!(
        metrics.contains(r#"heartbeat_ignored_values_total{field="device_id"} 1"#),
        "{metrics}"
    );
    assert_eq!(daemon.stop(), 0);
}
