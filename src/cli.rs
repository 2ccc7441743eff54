//! Command-line interface: every configuration key has a flag, and flags override the file.
//!
//! Most flags are declared on the configuration sections themselves (clap attributes next to
//! the serde keys, see [`crate::config`]) and applied with clap's "update from the flags that
//! were given": a flag that is absent leaves the file's value alone. This file adds what is
//! not one key of one section: the config file itself, the listener flags (one type serves
//! both `[statsd]` and `[pystatsd]`), `--tag` (adds to a map) and each sink type's flags
//! ([`crate::sink::SinkFlags`]).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser};

use crate::config::{Config, ConfigError};
use crate::sink::SinkFlags;

/// A statsd server for Etsy/DogStatsD lines and pystatsd JSON.
///
/// Receives metrics over UDP, aggregates them per flush interval on every core and writes
/// tagged aggregates to its sinks (Kafka, Graphite, the console). Start it with no
/// arguments to listen on 127.0.0.1:8125 (line protocol) and 127.0.0.1:5090 (pystatsd JSON)
/// and print aggregates to stdout as JSON lines; as a service, `rstatsd --config
/// /etc/rstatsd/rstatsd.toml`. Every configuration key has a flag, and flags override the
/// config file.
#[derive(Debug, Parser)]
#[command(name = "rstatsd", version, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file (packaged default: /etc/rstatsd/rstatsd.toml).
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the configuration (file and flags), print the result and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Line-protocol UDP address; repeat for several (replaces statsd.listen).
    #[arg(long, value_name = "ADDR")]
    pub statsd_listen: Vec<SocketAddr>,

    /// Disable the line-protocol listener (statsd.enabled = false).
    #[arg(long)]
    pub no_statsd: bool,

    /// pystatsd JSON UDP address; repeat for several (replaces pystatsd.listen).
    #[arg(long, value_name = "ADDR")]
    pub pystatsd_listen: Vec<SocketAddr>,

    /// Disable the pystatsd JSON listener (pystatsd.enabled = false).
    #[arg(long)]
    pub no_pystatsd: bool,

    /// Receiver threads per address for both listeners; 0 = one per core
    /// (statsd.receivers, pystatsd.receivers).
    #[arg(long, value_name = "N")]
    pub receivers: Option<usize>,

    /// Global tag added to every series lacking the key; repeatable (tags).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    #[command(flatten)]
    pub sinks: SinkFlags,

    /// Every flag as given, for the sections' own flags (see the module docs).
    #[arg(skip)]
    matches: ArgMatches,
    /// Old flag names given (see [`renamed_flag`]).
    #[arg(skip)]
    deprecated: Vec<String>,
}

/// Flag prefixes renamed, still accepted: (old, new).
const RENAMED_FLAGS: [(&str, &str); 1] = [("--aggregate-", "--fleet-")];

/// `arg` with an old flag name replaced by its new one (noted in `deprecated`): translated
/// before clap sees it, so the help shows only the new names.
fn renamed_flag(arg: OsString, deprecated: &mut Vec<String>) -> OsString {
    let Some(text) = arg.to_str() else {
        return arg;
    };
    for (old, new) in RENAMED_FLAGS {
        if let Some(rest) = text.strip_prefix(old) {
            let flag = rest.split('=').next().unwrap_or(rest);
            deprecated.push(format!("{old}{flag} (now {new}{flag})"));
            return format!("{new}{rest}").into();
        }
    }
    arg
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Every flag: the ones above and the sections'. The help opens with [`Cli`]'s text, not
/// with [`Config`]'s (whose doc is written for this crate's readers).
pub fn command() -> clap::Command {
    let cli = Cli::command();
    let about = cli.get_about().cloned().unwrap_or_default();
    let long_about = cli.get_long_about().cloned().unwrap_or_default();
    Config::augment_args(cli)
        .about(about)
        .long_about(long_about)
}

impl Cli {
    /// Parses the process arguments; exits with usage errors (code 2) as clap does.
    pub fn parse_args() -> Cli {
        Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut deprecated = Vec::new();
        let args: Vec<OsString> = args
            .into_iter()
            .map(|a| renamed_flag(a.into(), &mut deprecated))
            .collect();
        let matches = command().try_get_matches_from(args)?;
        let mut cli = <Cli as FromArgMatches>::from_arg_matches(&matches)?;
        cli.matches = matches;
        cli.deprecated = deprecated;
        Ok(cli)
    }

    /// Loads the config file (if any), applies the flags and validates the result; errors
    /// name the file here, in one place.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        match &self.config {
            Some(path) => Config::load(path),
            None => Ok(Config::default()),
        }
        .and_then(|mut config| {
            self.apply(&mut config)?;
            config.validate()?;
            Ok(config)
        })
        .map_err(|e| e.in_file(self.config.clone()))
    }

    /// Overrides `config` with every flag given.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        config
            .update_from_arg_matches(&self.matches)
            .map_err(|e| ConfigError::new("", e.to_string()))?;
        if !self.statsd_listen.is_empty() {
            config.statsd.listen = self.statsd_listen.clone();
        }
        if !self.pystatsd_listen.is_empty() {
            config.pystatsd.listen = self.pystatsd_listen.clone();
        }
        if self.no_statsd {
            config.statsd.enabled = false;
        }
        if self.no_pystatsd {
            config.pystatsd.enabled = false;
        }
        if let Some(n) = self.receivers {
            config.statsd.receivers = n;
            config.pystatsd.receivers = n;
        }
        for (k, v) in &self.tags {
            config.tags.insert(k.clone(), v.clone());
        }
        config.deprecations.extend(self.deprecated.iter().cloned());
        self.sinks.apply(&mut config.sinks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_absent_flags_keep_it() {
        let cli = Cli::try_parse_args([
            "rstatsd",
            "--statsd-listen",
            "127.0.0.1:9000",
            "--statsd-listen",
            "[::1]:9000",
            "--no-pystatsd",
            "--flush-interval-ms",
            "500",
            "--percentiles",
            "90,-10,99.9",
            "--tag",
            "host=a",
            "--console",
            "--no-admin",
            "--max-tags",
            "7",
        ])
        .unwrap();
        let mut c = Config::parse(
            "[flush]\ninterval_ms = 2000\nsnapshot_queue = 9\n[http]\nenabled = false\n\
             [aggregation]\nsanitize_names = false\n",
        )
        .unwrap();
        cli.apply(&mut c).unwrap();
        c.validate().unwrap();
        assert_eq!(c.statsd.listen.len(), 2);
        assert!(!c.pystatsd.enabled);
        assert_eq!(c.flush.interval_ms, 500);
        assert_eq!(c.flush.snapshot_queue, 9, "not a flag: the file's value");
        assert_eq!(c.aggregation.percentiles, vec![90.0, -10.0, 99.9]);
        assert!(
            !c.aggregation.sanitize_names,
            "an absent --no-sanitize keeps false"
        );
        assert!(!c.admin.enabled);
        assert!(
            !c.http.enabled,
            "an absent --no-http keeps the file's false"
        );
        assert_eq!(c.limits.max_tags, 7);
        assert_eq!(c.limits.max_name_bytes, 256);
        assert_eq!(c.tags["host"], "a");
        assert!(c.sinks.contains_key("console"));
    }

    #[test]
    fn help_and_man_page_say_what_rstatsd_is_and_show_no_rustdoc_syntax() {
        let help = command().render_long_help().to_string();
        assert!(
            help.starts_with("A statsd server for Etsy/DogStatsD lines and pystatsd JSON.\n"),
            "{}",
            &help[..200]
        );
        let mut man = Vec::new();
        clap_mangen::Man::new(command()).render(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains("A statsd server for Etsy/DogStatsD lines and pystatsd JSON"));
        for (what, text) in [("--help", &help), ("the man page", &man)] {
            for syntax in ["[`", "`]", "crate::", "super::", "](", "Self::"] {
                assert!(!text.contains(syntax), "{what} shows {syntax:?}:\n{text}");
            }
        }
    }

    #[test]
    fn old_fleet_flags_are_read_as_the_new_ones_and_noted_once_each() {
        let cli = Cli::try_parse_args([
            "rstatsd",
            "--aggregate-from",
            "k:9092",
            "--aggregate-grace-ms=500",
        ])
        .unwrap();
        let mut c = Config::default();
        cli.apply(&mut c).unwrap();
        assert_eq!(c.fleet.from, vec!["k:9092"]);
        assert_eq!(c.fleet.grace_ms, 500);
        assert_eq!(
            c.deprecation_warning().unwrap(),
            "deprecated configuration names, still read: --aggregate-from (now --fleet-from), \
             --aggregate-grace-ms (now --fleet-grace-ms); the old names will be removed in a \
             later release"
        );
    }

    #[test]
    fn bad_tag_flag_is_rejected() {
        assert!(Cli::try_parse_args(["rstatsd", "--tag", "novalue"]).is_err());
    }
}
