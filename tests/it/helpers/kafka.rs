//! The broker's view of a test: committed offsets, the group's state, what a topic holds.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{brokers, unique, wait_for, PARTITIONS};

/// An independent producer, as a user's would be: keyed records go to the key's partition
/// (murmur2, like the Java client), batched for 5 ms.
pub fn producer_at(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("create test producer")
}

/// [`producer_at`] the shared test broker.
pub fn producer() -> FutureProducer {
    producer_at(&brokers())
}

/// Queues `value` on `topic`, keyed by `key`, with the Kafka timestamp `timestamp_ms`.
pub fn queue_keyed(p: &FutureProducer, topic: &str, key: &str, value: &str, timestamp_ms: i64) {
    p.send_result(
        FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .timestamp(timestamp_ms),
    )
    .map_err(|(e, _)| e)
    .expect("queue reading");
}

/// The offsets `group` has committed on `topic`, per partition (absent = none committed).
pub fn committed_offsets(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    committed_offsets_at(&brokers(), group, topic)
}

/// [`committed_offsets`] on the broker at `brokers`.
pub fn committed_offsets_at(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("fetch committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// What the broker at `brokers` says of consumer group `group`: its state and members, for the
/// message of a wait that expired.
/// How many members the broker lists in consumer group `group`; `None` when it cannot say.
pub fn group_members(brokers: &str, group: &str) -> Option<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .ok()?;
    let list = consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .ok()?;
    let found = list.groups().iter().find(|g| g.name() == group)?;
    Some(found.members().len())
}

pub fn group_state(brokers: &str, group: &str) -> String {
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
    {
        Ok(c) => c,
        Err(e) => return format!("no client: {e}"),
    };
    match consumer.fetch_group_list(Some(group), Duration::from_secs(10)) {
        Ok(list) => list
            .groups()
            .iter()
            .map(|g| {
                let members: Vec<String> = g
                    .members()
                    .iter()
                    .map(|m| {
                        let assignment: String = m.assignment().map_or("none".into(), |b| {
                            b.iter().map(|x| format!("{x:02x}")).collect()
                        });
                        format!("{} ({}, assignment {assignment})", m.id(), m.client_host())
                    })
                    .collect();
                format!(
                    "group {} state {} protocol {} members [{}]",
                    g.name(),
                    g.state(),
                    g.protocol(),
                    members.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("cannot describe group {group}: {e}"),
    }
}

/// The sum of committed offsets = records the group has finished, when offsets start at 0.
pub fn committed_total(group: &str, topic: &str) -> i64 {
    committed_offsets(group, topic).values().sum()
}

/// A consumer of every partition of `topic` at `brokers`, from the beginning, in a group of its
/// own that commits nothing.
pub fn reader_at(brokers: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("hb_reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Every record of `topic`, from the beginning, until `expected` have arrived.
pub fn read_topic(topic: &str, expected: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer = reader_at(&brokers(), topic);
    let mut out = Vec::new();
    wait_for(
        &format!("{expected} records on {topic}"),
        Duration::from_secs(90),
        || {
            while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.detach());
            }
            (out.len() >= expected).then_some(())
        },
    );
    // Anything beyond the expected count would be a duplicate dead letter: look a little longer.
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        out.push(m.detach());
    }
    out
}

pub fn header(m: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
}
