//! Prints the messages of a Kafka topic from the beginning, and exits once no message has
//! arrived for two seconds.
//!
//! `cargo run --example kafka_tail -- [BROKERS] [TOPIC]` (defaults: 127.0.0.1:9092 metrics).
//! Each line: `partition offset key<TAB>payload`.
//!
//! It stops on silence rather than at the partitions' high watermarks because some brokers
//! (tansu 0.6.0) report watermarks per produce batch, not per record.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const IDLE: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "metrics".into());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "rstatsd-kafka-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    while let Some(msg) = consumer.poll(IDLE) {
        let msg = msg?;
        println!(
            "{} {} {}\t{}",
            msg.partition(),
            msg.offset(),
            String::from_utf8_lossy(msg.key().unwrap_or_default()),
            String::from_utf8_lossy(msg.payload().unwrap_or_default())
        );
    }
    Ok(())
}
