//! Sink types by name: the one list a new sink registers in.
//!
//! Each line of the `sink_types!` invocation below names a `type = "…"`, the config variant
//! and the sink folder's [`SinkSpec`] type. From it the macro makes [`SinkConfig`] (parsed
//! from `[sinks.NAME]` with the inner key path kept for errors), [`SinkFlags`] (every type's
//! flags, flattened into the command line), validation, flag application and `build`.

use std::collections::BTreeMap;

use super::{BuildContext, BuiltSink, ConfigError, SinkSpec};

/// Separates the inner key path from the reason in a sink's deserialization error, so the
/// config loader can report `sinks.NAME.key` (serde's internally tagged enums would lose the
/// inner path).
pub const INNER_KEY: char = '\u{1f}';

macro_rules! sink_types {
    ($( $(#[$meta:meta])* $kind:literal => $variant:ident($module:ident :: $spec:ident), )*) => {
        /// `[sinks.NAME]`, selected by `type`.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SinkConfig {
            $( $(#[$meta])* $variant(Box<super::$module::$spec>), )*
        }

        /// Every sink type's flags.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct SinkFlags {
            $( $(#[$meta])* #[command(flatten)] $module: <super::$module::$spec as SinkSpec>::Flags, )*
        }

        /// Every registered `type`, for error messages.
        pub const TYPES: &[&str] = &[$( $(#[$meta])* $kind, )*];

        impl SinkConfig {
            /// Parses the table of a sink of type `kind`; `None` for an unknown type.
            fn parse(
                kind: &str,
                table: toml::Value,
            ) -> Option<Result<SinkConfig, serde_path_to_error::Error<toml::de::Error>>> {
                match kind {
                    $( $(#[$meta])* $kind => Some(
                        serde_path_to_error::deserialize(table)
                            .map(|c| SinkConfig::$variant(Box::new(c))),
                    ), )*
                    _ => None,
                }
            }

            /// Checks the sink's own keys; `key` is `sinks.NAME`.
            pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
                match self {
                    $( $(#[$meta])* SinkConfig::$variant(c) => c.validate(key), )*
                }
            }

            /// Creates the running sink(s).
            pub fn build(&self, name: &str, context: &BuildContext) -> Result<Vec<BuiltSink>, ConfigError> {
                match self {
                    $( $(#[$meta])* SinkConfig::$variant(c) => c.build(name, context), )*
                }
            }
        }

        impl SinkFlags {
            /// Applies every type's flags to the configured sinks.
            pub fn apply(&self, sinks: &mut BTreeMap<String, SinkConfig>) -> Result<(), ConfigError> {
                $( $(#[$meta])*
                if let Some(name) = <super::$module::$spec as SinkSpec>::flagged_sink(&self.$module) {
                    let entry = sinks
                        .entry(name.to_string())
                        .or_insert_with(|| SinkConfig::$variant(Box::default()));
                    match entry {
                        SinkConfig::$variant(c) => c.apply_flags(&self.$module),
                        #[allow(unreachable_patterns)]
                        _ => return Err(ConfigError::new(
                            format!("sinks.{name}"),
                            format!("the {} flags need the sink named `{name}` to be of type {}", $kind, $kind),
                        )),
                    }
                } )*
                Ok(())
            }
        }
    };
}

sink_types! {
    "console" => Console(console::ConsoleConfig),
    "graphite" => Graphite(graphite::GraphiteConfig),
    #[cfg(feature = "kafka")]
    "kafka" => Kafka(kafka::KafkaConfig),
}

impl<'de> serde::Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let types = TYPES.join(", ");
        let kind = match table.remove("type") {
            Some(toml::Value::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom(format!("type{INNER_KEY}must be a string"))),
            None => return Err(D::Error::custom(format!("missing `type` (one of {types})"))),
        };
        match SinkConfig::parse(&kind, toml::Value::Table(table)) {
            Some(parsed) => parsed.map_err(|e| {
                D::Error::custom(format!("{}{INNER_KEY}{}", e.path(), e.inner().message()))
            }),
            None if kind == "kafka" => Err(D::Error::custom(format!(
                "type{INNER_KEY}this rstatsd was built without the `kafka` feature"
            ))),
            None => Err(D::Error::custom(format!(
                "type{INNER_KEY}unknown sink type {kind:?} (one of {types})"
            ))),
        }
    }
}

/// Instantiates the configured sinks (a console sink named `console` if none). Kafka
/// producers are created here, so librdkafka's verdict on their properties is a
/// configuration error.
pub fn build_all(
    sinks: &BTreeMap<String, SinkConfig>,
    context: &BuildContext,
) -> Result<Vec<BuiltSink>, ConfigError> {
    if sinks.is_empty() {
        let console = SinkConfig::Console(Box::default());
        return console.build("console", context);
    }
    let mut built = Vec::new();
    for (name, sink) in sinks {
        built.extend(sink.build(name, context)?);
    }
    Ok(built)
}
