//! The writer's transaction and the summaries of `inspect`.
//!
//! # Parts
//! - `batch.rs`: [`persist_batch`], the one transaction of a batch, fenced by the claims.
//! - `claims.rs`: [`claim_partitions`] and the fence a batch is checked against.
//! - `restore.rs`: what a new owner loads: saved states, the stored tails they miss, the
//!   identities already stored, the database clock.
//! - `outbox.rs`: the anomalies stored but not yet acknowledged on the anomalies topic.
//! - `events.rs`: the alert episode events of the delivery outbox and what each receiver has of them.
//! - `partitions.rs`: the day partitions of `readings`: created ahead, dropped when expired.
//! - `retention.rs`: the expired rows of the other tables, deleted in bounded rounds.
//! - `summary.rs`: the counts `inspect` prints.
//! - `rules.rs`: the per-customer alert rules of `heartbeat-pipeline rules`.

mod batch;
mod claims;
mod events;
mod outbox;
mod partitions;
mod restore;
mod retention;
pub mod rules;
mod summary;

pub use batch::{persist_batch, BatchOutcome, BatchRows};
pub use claims::{claim_partitions, Claimed};
pub use events::{
    count_pending_events, mark_done, note_delivered, open_activated_episodes, pending_events,
    try_lead_delivery, EpisodeColumns, PendingEvent,
};
pub use outbox::{alerts_published, pending_alerts, PendingAlert};
pub use partitions::{drop_expired_partitions, ensure_day_partitions, utc_day};
pub use restore::{
    database_clock, load_partition_states, load_states, load_tails, stored_identities, TailReading,
};
pub use retention::{expire_rows, ROWS_PER_ROUND};
pub use summary::{summary, LabelCount, Summary, Totals};
