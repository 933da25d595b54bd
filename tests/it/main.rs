//! Integration tests against a real PostgreSQL and a real Kafka-API broker (tansu), both started
//! by `scripts/services.sh up` (which `scripts/test.sh` runs first). One binary, so the crate is
//! linked once; each test has its own database, topics and consumer group.

mod activation;
mod activity;
mod alert_delivery;
mod alert_state;
mod alertmanager_parts;
mod broker;
mod budget;
mod burden;
mod chaos;
mod cli;
mod config_properties;
mod contract;
mod delivery;
mod detection;
mod device;
mod faults;
mod formats;
mod helpers;
mod many_days;
mod ops;
mod produce;
mod retention;
mod rules;
mod security;
