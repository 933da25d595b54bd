//! `tail`: prints the records of a topic as they arrive, one line each:
//! `partition/offset  timestamp  key  headers  value`. Reads without committing anything.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use slog::{error, Logger};

use super::{exit, stopped};
use crate::config::Settings;
use crate::kafka as kafka_cfg;

/// How long to wait for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn text(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

pub async fn tail(
    settings: Settings,
    topic: Option<String>,
    from_beginning: bool,
    log: Logger,
) -> i32 {
    let stop = super::shutdown_signal(&log);
    let topic = topic.unwrap_or_else(|| settings.kafka.topics.readings.clone());
    let group = format!("heartbeat-tail-{}", uuid::Uuid::new_v4());
    let consumer: StreamConsumer = match kafka_cfg::reader_config(&settings.kafka, &group).create()
    {
        Ok(c) => c,
        Err(e) => {
            error!(log, "cannot create a kafka consumer"; "error" => %e);
            return exit::FAILURE;
        }
    };
    let metadata = match consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: cannot read metadata of topic {topic} from {}: {e}",
                settings.kafka.brokers
            );
            return exit::FAILURE;
        }
    };
    let mut tpl = TopicPartitionList::new();
    let start = if from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    for t in metadata.topics() {
        for p in t.partitions() {
            let _ = tpl.add_partition_offset(&topic, p.id(), start);
        }
    }
    if tpl.count() == 0 {
        eprintln!("error: topic {topic} does not exist or has no partitions");
        return exit::FAILURE;
    }
    if let Err(e) = consumer.assign(&tpl) {
        eprintln!("error: cannot read topic {topic}: {e}");
        return exit::FAILURE;
    }
    eprintln!(
        "following {topic} ({} partitions); Ctrl-C stops",
        tpl.count()
    );
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return exit::OK,
            received = consumer.recv() => match received {
                Ok(m) => {
                    let ts = m.timestamp().to_millis()
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_else(|| "-".to_owned());
                    let headers = m.headers().map(|h| {
                        h.iter()
                            .map(|h| format!("{}={}", h.key, text(h.value)))
                            .collect::<Vec<_>>()
                            .join(",")
                    }).unwrap_or_default();
                    println!("{}/{}\t{}\t{}\t{}\t{}", m.partition(), m.offset(), ts,
                        text(m.key()), headers, text(m.payload()));
                }
                Err(e) => eprintln!("warning: {e}"),
            }
        }
    }
}
