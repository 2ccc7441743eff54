//! librdkafka client set-up, for the Kafka sink's producer and the fleet stage's consumer
//! alike: the properties rstatsd sets from its own keys, the section's verbatim
//! `properties` (which override them), and a refusal by librdkafka mapped back to the
//! configuration key the property came from.

use std::collections::BTreeMap;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::KafkaError;

use crate::config_error::ConfigError;

/// The librdkafka properties of one client, each with the configuration key it came from.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The configuration section (`sinks.NAME`, `fleet`): errors name its keys.
    section: String,
    /// (librdkafka property, value, configuration key).
    entries: Vec<(String, String, String)>,
}

impl ClientSettings {
    /// The settings of a client configured by `section`.
    pub fn new(section: &str) -> ClientSettings {
        ClientSettings {
            section: section.to_string(),
            entries: Vec::new(),
        }
    }

    /// Sets librdkafka's `property` from rstatsd's key `key` of the section (`""`: the
    /// section as a whole).
    pub fn set(mut self, property: &str, value: impl Into<String>, key: &str) -> Self {
        let from = if key.is_empty() {
            self.section.clone()
        } else {
            format!("{}.{key}", self.section)
        };
        self.entries.retain(|(p, _, _)| p != property);
        self.entries
            .push((property.to_string(), value.into(), from));
        self
    }

    /// The section's `properties` table, passed verbatim: each replaces a property of the
    /// same name set before.
    pub fn properties(mut self, properties: &BTreeMap<String, String>) -> Self {
        for (k, v) in properties {
            self.entries.retain(|(p, _, _)| p != k);
            let from = format!("{}.properties.{k:?}", self.section);
            self.entries.push((k.clone(), v.clone(), from));
        }
        self
    }

    /// The value a property will have, if set.
    #[cfg(test)]
    fn get(&self, property: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _, _)| p == property)
            .map(|(_, v, _)| v.as_str())
    }

    /// Creates the client (`what`: "producer", "consumer", for the error). A property
    /// librdkafka refuses is reported against the key it came from.
    pub fn create<C, T>(&self, context: C, what: &str) -> Result<T, ConfigError>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        let mut client = ClientConfig::new();
        for (k, v, _) in &self.entries {
            client.set(k, v);
        }
        client.create_with_context(context).map_err(|e| match &e {
            KafkaError::ClientConfig(_, desc, key, _) => {
                let from = self.entries.iter().find(|(p, _, _)| p == key).map_or_else(
                    || format!("{}.properties.{key:?}", self.section),
                    |(_, _, from)| from.clone(),
                );
                ConfigError::new(from, format!("librdkafka: {desc}"))
            }
            other => ConfigError::new(
                self.section.clone(),
                format!("cannot create the Kafka {what}: {other}"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_override_our_keys_and_refusals_name_the_key_they_came_from() {
        let props = BTreeMap::from([("linger.ms".to_string(), "7".to_string())]);
        let s = ClientSettings::new("sinks.k")
            .set("linger.ms", "5", "linger_ms")
            .set("acks", "banana", "acks")
            .properties(&props);
        assert_eq!(s.get("linger.ms"), Some("7"));
        let made: Result<rdkafka::producer::BaseProducer, _> =
            s.create(rdkafka::producer::DefaultProducerContext, "producer");
        let Err(e) = made else {
            panic!("librdkafka took acks = banana")
        };
        assert_eq!(e.key, "sinks.k.acks");
        assert!(e.reason.starts_with("librdkafka: "), "{}", e.reason);
    }
}
