//! Every actix message of the pipeline, and the plain structs they carry.
//!
//! Commands are imperative (`Publish`, `Persist`, `Drain`), facts are past tense
//! (`RecordsReceived`, `ReadingsValidated`). Data-path messages carry whole batches: at 100k
//! records a second, one message per record would cost more than the work. `BatchPersisted` is
//! no message: the offset ledger (`src/offsets.rs`) is shared, not an actor, and a finished part
//! of a batch is reported to it by a plain call, `OffsetLedger::finish`.

use actix::Message;

use crate::db::models::StoredAnomaly;
use crate::domain::detector::{AlertRow, EpisodeEvent};
use crate::domain::reading::Reading;
use crate::domain::record::{
    Anomaly, BatchPositions, ClassifiedReading, CustomerSnapshot, PartitionCheckpoint,
    RejectedRecord, SourceRecord, SourcedReading,
};

/// Identifies a batch from the subscriber to the writer and back.
pub type BatchId = u64;

/// Generator -> KafkaPublisher: send these readings to the readings topic. Answered once every
/// reading is queued in the producer (not yet acknowledged), so a full queue slows the sender.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub records: Vec<OutgoingRecord>,
}

/// One record for the readings topic, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The customer id: a customer's readings share a partition.
    pub key: String,
    /// The JSON message; `None` sends a null value (a malformed record, on purpose).
    pub value: Option<Vec<u8>>,
    /// Ground truth for scoring detection: the `x-injected` header, when the record belongs to
    /// an injected episode (the comma-separated kinds it should page for) or is a fault
    /// (`fault:<reason>`); None for a natural reading.
    pub injected: Option<String>,
    /// The `x-episode` header: the injected episode's id in decimal; None for a natural reading
    /// and for a fault.
    pub episode: Option<u64>,
}

impl OutgoingRecord {
    /// A valid reading as its JSON message, with its ground truth when it is injected.
    pub fn reading(reading: &Reading, injected: Option<String>, episode: Option<u64>) -> Self {
        OutgoingRecord {
            key: reading.customer_id.clone(),
            value: Some(reading.to_json().into_bytes()),
            injected,
            episode,
        }
    }
}

/// Ask the KafkaPublisher to wait until every queued record is acknowledged or failed.
#[derive(Debug, Message)]
#[rtype(result = "DeliveryTotals")]
pub struct Flush;

/// What the publisher has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryTotals {
    pub queued: u64,
    pub acknowledged: u64,
    pub failed: u64,
}

/// KafkaSubscriber -> Validator: records read from Kafka, in partition order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordsReceived {
    pub id: BatchId,
    pub records: Vec<SourceRecord>,
    pub positions: BatchPositions,
}

/// Validator -> AnomalyDetector: the batch split into valid readings and rejects.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReadingsValidated {
    pub id: BatchId,
    pub readings: Vec<SourcedReading>,
    pub rejects: Vec<RejectedRecord>,
    pub positions: BatchPositions,
}

/// AnomalyDetector -> DbWriter: store this batch (its part for one writer) in one transaction.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Persist {
    /// The batch, as the offset ledger numbered it: the subscriber's, or one the detector began
    /// for what it finds by itself (silences, checkpoints), which has no source offsets.
    pub id: BatchId,
    pub readings: Vec<ClassifiedReading>,
    pub rejects: Vec<RejectedRecord>,
    pub anomalies: Vec<Anomaly>,
    /// Alert episodes opened, updated or resolved by this batch (latest version each).
    pub alerts: Vec<AlertRow>,
    /// Activations and resolutions of episodes by this batch, for the delivery outbox
    /// (`alert_events`), each with the episode as that reading left it.
    pub events: Vec<EpisodeEvent>,
    /// Detector state of the customers saved with this batch.
    pub states: Vec<CustomerSnapshot>,
    pub positions: BatchPositions,
    /// How many parts the batch was split into among the writers (by customer); the batch is
    /// finished once every part is.
    pub parts: u32,
    /// The partitions of the batch with the ownership epoch the detector holds each with: the
    /// transaction commits only while every one is still current (`detector_epochs`), so a stale
    /// owner cannot overwrite what a new owner wrote.
    pub fence: Vec<(i32, i64)>,
    /// Checkpoints that have become durable, to record (`detector_checkpoints`).
    pub checkpoints: Vec<PartitionCheckpoint>,
}

impl Persist {
    /// A part of batch `id` with nothing in it yet.
    pub fn empty(id: BatchId, positions: BatchPositions) -> Persist {
        Persist {
            id,
            readings: Vec::new(),
            rejects: Vec::new(),
            anomalies: Vec::new(),
            alerts: Vec::new(),
            events: Vec::new(),
            states: Vec::new(),
            positions,
            parts: 1,
            fence: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.rejects.is_empty()
            && self.anomalies.is_empty()
            && self.alerts.is_empty()
            && self.events.is_empty()
            && self.states.is_empty()
            && self.checkpoints.is_empty()
    }
}

/// A part of a batch whose rows committed (and whose outputs were acknowledged): what the
/// DbWriter, or the OutputPublisher after its records are acknowledged, hands to
/// `OffsetLedger::finish` (a call, not an actix message), which stores the batch's offsets once
/// every part, and every earlier batch, is finished.
#[derive(Debug)]
pub struct BatchPersisted {
    pub id: BatchId,
    /// Parts of the batch, each reported on its own (see `Persist::parts`).
    pub parts: u32,
    pub positions: BatchPositions,
    /// Partitions whose rows this part did not write because another owner holds them now
    /// (fenced): their offsets must not be stored for this batch.
    pub fenced: Vec<i32>,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Stop reading, wait until every batch read so far is stored, commit offsets synchronously.
/// Answers `true` once drained; the caller bounds the wait with `shutdown.timeout_ms`.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Drain;

/// Stop generating (the Generator stops itself; what it already sent is still published).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopGenerating;

/// DbWriter -> OutputPublisher: the batch's rows committed; publish its rejects to the
/// dead-letter topic and its new anomalies to the anomalies topic, then hand `persisted` (if
/// any) to the offset ledger (`OffsetLedger::finish`) once every record is acknowledged.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PublishOutputs {
    pub persisted: Option<BatchPersisted>,
    pub dead_letters: Vec<RejectedRecord>,
    pub alerts: Vec<StoredAnomaly>,
}
