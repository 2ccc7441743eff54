//! Prints every message of a Kafka topic, then exits (like `kcat -C -e`).
//!
//! `cargo run --example kafka_tail -- [BROKERS] [TOPIC]` (defaults: 127.0.0.1:9092 metrics).
//! Each line: `partition offset key<TAB>payload`.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "metrics".into());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "rstatsd-kafka-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for p in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
        if high > low {
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
            remaining.push((p.id(), high));
        }
    }
    if remaining.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        let Some(msg) = consumer.poll(timeout) else {
            return Err(format!("no message within {timeout:?}").into());
        };
        let msg = msg?;
        println!(
            "{} {} {}\t{}",
            msg.partition(),
            msg.offset(),
            String::from_utf8_lossy(msg.key().unwrap_or_default()),
            String::from_utf8_lossy(msg.payload().unwrap_or_default())
        );
        remaining.retain(|&(p, high)| !(p == msg.partition() && msg.offset() + 1 >= high));
    }
    Ok(())
}
