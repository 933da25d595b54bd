// @generated automatically by Diesel CLI.

diesel::table! {
    alert_deliveries (event_id, receiver) {
        event_id -> Int8,
        receiver -> Text,
        delivered_at -> Timestamptz,
    }
}

diesel::table! {
    alert_events (id) {
        id -> Int8,
        customer_id -> Text,
        kind -> Text,
        opened_at -> Timestamptz,
        event -> Text,
        activated_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        last_seen_at -> Timestamptz,
        readings -> Int4,
        peak_heart_rate -> Nullable<Int2>,
        created_at -> Timestamptz,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    alert_outbox (id) {
        anomaly_ids -> Array<Nullable<Int8>>,
        id -> Int8,
    }
}

diesel::table! {
    alert_rules (customer_id) {
        customer_id -> Text,
        critical_low_below -> Nullable<Int4>,
        low_below -> Nullable<Int4>,
        high_above -> Nullable<Int4>,
        critical_high_above -> Nullable<Int4>,
        muted_until -> Nullable<Timestamptz>,
        note -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by -> Text,
    }
}

diesel::table! {
    alerts (customer_id, kind, opened_at) {
        customer_id -> Text,
        kind -> Text,
        opened_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        readings -> Int4,
        peak_heart_rate -> Nullable<Int2>,
        activated_at -> Nullable<Timestamptz>,
        suppressed -> Nullable<Text>,
    }
}

diesel::table! {
    anomalies (id) {
        id -> Int8,
        event_id -> Nullable<Uuid>,
        customer_id -> Text,
        kind -> Text,
        heart_rate -> Nullable<Int2>,
        recorded_at -> Timestamptz,
        detected_at -> Timestamptz,
        details -> Jsonb,
    }
}

diesel::table! {
    detector_checkpoints (kafka_partition) {
        kafka_partition -> Int4,
        epoch -> Int8,
        checkpoint_offset -> Nullable<Int8>,
        replay_from -> Timestamptz,
        checkpointed_at -> Timestamptz,
    }
}

diesel::table! {
    detector_epochs (kafka_partition) {
        kafka_partition -> Int4,
        epoch -> Int8,
        owner -> Text,
        claimed_at -> Timestamptz,
    }
}

diesel::table! {
    detector_state (customer_id) {
        customer_id -> Text,
        kafka_partition -> Int4,
        state -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    readings (recorded_at, event_id) {
        event_id -> Uuid,
        customer_id -> Text,
        recorded_at -> Timestamptz,
        heart_rate -> Int2,
        class -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        ingested_at -> Timestamptz,
        activity -> Nullable<Text>,
        device_id -> Nullable<Text>,
    }
}

diesel::table! {
    rejected_readings (id) {
        id -> Int8,
        raw -> Bytea,
        raw_sha256 -> Nullable<Bytea>,
        reason -> Text,
        detail -> Text,
        kafka_topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        rejected_at -> Timestamptz,
    }
}

diesel::joinable!(alert_deliveries -> alert_events (event_id));

diesel::allow_tables_to_appear_in_same_query!(
    alert_deliveries,
    alert_events,
    alert_outbox,
    alert_rules,
    alerts,
    anomalies,
    detector_checkpoints,
    detector_epochs,
    detector_state,
    readings,
    rejected_readings,
);
