//! Wiring: binds the listeners, starts receivers, sinks and the flusher, and stops them in
//! order. The binary (`main.rs`) adds signals; tests and benches can run a [`Server`]
//! in-process.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::admin::{AdminState, http, mgmt};
use crate::aggregate::SeriesGuard;
use crate::config::{Config, ConfigError};
#[cfg(feature = "kafka")]
use crate::fleet;
use crate::flush::{CarrySettings, FinalizeSettings, FlushSettings, Flusher, ListenerFacts};
use crate::parse::Protocol;
use crate::receive::{self, ReceiverSettings, SocketPool};
use crate::sink::{BuiltSink, SinkHandle, SinkTotals, registry};

/// A start-up failure: a socket that cannot be bound, a thread that cannot start.
#[derive(Debug)]
pub struct StartError {
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

/// Why [`Server::start`] failed.
#[derive(Debug)]
pub enum ServerError {
    /// A sink rejected its configuration (exit code 2).
    Config(ConfigError),
    Start(StartError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => e.fmt(f),
            ServerError::Start(e) => e.fmt(f),
        }
    }
}

impl From<StartError> for ServerError {
    fn from(e: StartError) -> Self {
        ServerError::Start(e)
    }
}

impl std::error::Error for StartError {}

/// Asks a running server to stop (final flush included). Cloneable, usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Sender<()>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.try_send(());
    }
}

/// A running rstatsd.
pub struct Server {
    listeners: Vec<(Protocol, SocketAddr, usize)>,
    /// ("admin" | "http", bound address).
    admin_listeners: Vec<(&'static str, SocketAddr)>,
    receivers: Vec<JoinHandle<()>>,
    flusher: JoinHandle<Vec<(String, SinkTotals)>>,
    shutdown: ShutdownHandle,
}

impl Server {
    /// Binds every listener and starts all threads. Sinks come from `config.sinks` (a
    /// console sink writing to stdout when none is configured).
    pub fn start(config: &Config) -> Result<Server, ServerError> {
        let sinks = registry::build_all(&config.sinks, &config.sink_context())
            .map_err(ServerError::Config)?;
        Server::start_with_sinks(config, sinks)
    }

    /// Like [`Server::start`] with the given sinks instead of `config.sinks`.
    pub fn start_with_sinks(config: &Config, sinks: Vec<BuiltSink>) -> Result<Server, ServerError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (harvest_tx, harvest_rx) = unbounded();
        let guard = Arc::new(SeriesGuard::new(&config.limits.aggregate()));
        // The admin plane binds first: a port conflict there must fail start-up before any
        // receiver thread runs.
        let io_error = |what: String| move |source| StartError { what, source };
        let mut admin_listeners = Vec::new();
        let mut bind_tcp = |name: &'static str, enabled: bool, addr: SocketAddr| {
            if !enabled {
                return Ok(None);
            }
            let what = format!("cannot listen on {name} tcp {addr}");
            let listener = std::net::TcpListener::bind(addr).map_err(io_error(what.clone()))?;
            admin_listeners.push((name, listener.local_addr().map_err(io_error(what))?));
            Ok::<_, StartError>(Some(listener))
        };
        let mgmt_listener = bind_tcp("admin", config.admin.enabled, config.admin.listen)?;
        let http_listener = bind_tcp("http", config.http.enabled, config.http.listen)?;
        let mut controls = Vec::new();
        let mut receivers = Vec::new();
        let mut listeners = Vec::new();
        let mut inodes = Vec::new();
        let epoch = Instant::now();
        for protocol in Protocol::ALL {
            let lc = config.listener(protocol);
            if !lc.enabled {
                continue;
            }
            let count = if lc.receivers == 0 {
                cores
            } else {
                lc.receivers
            };
            let settings = ReceiverSettings {
                protocol,
                batch_size: config.receive.batch_size,
                max_datagram_bytes: config.receive.max_datagram_bytes,
                coalesce: Duration::from_micros(config.receive.coalesce_us),
                sanitize_names: config.aggregation.sanitize_names,
                limits: config.limits.parse(),
                bounds: config.bounds(),
                guard: Arc::clone(&guard),
                epoch,
            };
            for addr in &lc.listen {
                let group = receive::bind_group(*addr, count, config.receive.rcvbuf_bytes)
                    .map_err(|source| StartError {
                        what: format!("cannot listen on {} udp {addr}", protocol.name()),
                        source,
                    })?;
                listeners.push((protocol, group.local_addr, group.rcvbuf_bytes));
                for socket in &group.sockets {
                    if let Some(inode) = receive::socket_inode(socket) {
                        inodes.push((protocol, inode));
                    }
                }
                let pool = SocketPool::new(group.sockets);
                for home in 0..pool.len() {
                    let (ctl_tx, ctl_rx) = unbounded();
                    let id = receivers.len();
                    let pool = Arc::clone(&pool);
                    let handle = receive::spawn(
                        id,
                        home,
                        pool,
                        settings.clone(),
                        ctl_rx,
                        harvest_tx.clone(),
                    )
                    .map_err(|source| StartError {
                        what: "cannot start a receiver thread".into(),
                        source,
                    })?;
                    controls.push(ctl_tx);
                    receivers.push(handle);
                }
            }
        }
        drop(harvest_tx);

        let mut handles = Vec::new();
        for built in sinks {
            let name = built.name.clone();
            let handle =
                SinkHandle::spawn(built, config.flush.snapshot_queue).map_err(|source| {
                    StartError {
                        what: format!("cannot start sink {name}"),
                        source,
                    }
                })?;
            handles.push(handle);
        }
        let settings = flush_settings(config, guard);
        let mut facts = ListenerFacts {
            socket_inodes: inodes,
            ..ListenerFacts::default()
        };
        for (p, _, bytes) in &listeners {
            if !facts.receive_buffers.iter().any(|(q, _)| q == p) {
                facts.receive_buffers.push((*p, *bytes));
            }
        }
        let (shutdown_tx, shutdown_rx) = bounded(1);
        let admin = Arc::new(AdminState::new(
            redact(&format!("{config:#?}")),
            config.limit_values(),
        ));
        if let Some(listener) = mgmt_listener {
            mgmt::spawn(listener, Arc::clone(&admin), &config.admin)
                .map_err(io_error("cannot start the admin thread".into()))?;
        }
        if let Some(listener) = http_listener {
            let bounds = http::Bounds {
                max_connections: config.http.max_connections,
                read_timeout: Duration::from_millis(config.http.read_timeout_ms),
                write_timeout: Duration::from_millis(config.http.write_timeout_ms),
            };
            http::spawn(listener, Arc::clone(&admin), bounds)
                .map_err(io_error("cannot start the http thread".into()))?;
        }
        let mut flusher =
            Flusher::new(settings, facts, controls, harvest_rx, handles).with_admin(admin);
        if config.fleet.enabled() {
            flusher = with_fleet_input(config, flusher)?;
        }
        let flusher = flusher.spawn(shutdown_rx).map_err(|source| StartError {
            what: "cannot start the flusher thread".into(),
            source,
        })?;
        Ok(Server {
            listeners,
            admin_listeners,
            receivers,
            flusher,
            shutdown: ShutdownHandle(shutdown_tx),
        })
    }

    /// Bound addresses (port 0 resolved), with their listener.
    pub fn local_addrs(&self) -> impl Iterator<Item = (Protocol, SocketAddr)> + '_ {
        self.listeners.iter().map(|(p, a, _)| (*p, *a))
    }

    /// Bound admin-plane addresses: ("admin" | "http", address).
    pub fn admin_addrs(&self) -> &[(&'static str, SocketAddr)] {
        &self.admin_listeners
    }

    /// Number of receiver threads.
    pub fn receiver_count(&self) -> usize {
        self.receivers.len()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped: receivers drained, final flush delivered by every
    /// sink (or given up on by its shutdown timeout). Returns after
    /// [`ShutdownHandle::shutdown`], with each sink's final counters.
    pub fn wait(self) -> Vec<(String, SinkTotals)> {
        let totals = self.flusher.join().unwrap_or_else(|_| {
            log::error!("flusher thread panicked");
            Vec::new()
        });
        for r in self.receivers {
            if r.join().is_err() {
                log::error!("a receiver thread panicked");
            }
        }
        totals
    }
}

/// Joins the aggregator group; the flusher finalizes what it closes and stops it at shutdown.
#[cfg(feature = "kafka")]
fn with_fleet_input(config: &Config, flusher: Flusher) -> Result<Flusher, ServerError> {
    let counters = Arc::<crate::stats::FleetCounters>::default();
    // Bounded: a slow sink slows the input down (it waits, checking for shutdown).
    let (tx, rx) = bounded(8);
    let window = config
        .fleet
        .window(config.flush.interval_ms, config.bounds());
    let input = fleet::spawn(&config.fleet, window, Arc::clone(&counters), tx)
        .map_err(ServerError::Config)?;
    Ok(flusher.with_closed_intervals(rx, counters, Box::new(input)))
}

#[cfg(not(feature = "kafka"))]
fn with_fleet_input(_: &Config, _: Flusher) -> Result<Flusher, ServerError> {
    Err(ServerError::Config(ConfigError::new(
        "fleet.from",
        "this rstatsd was built without Kafka support",
    )))
}

/// The configuration as the admin `config` command shows it: secrets (e.g. librdkafka's
/// `sasl.password`, `ssl.key.password`) replaced, since anyone on the host may connect.
fn redact(text: &str) -> String {
    text.lines()
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            let secret = ["password", "secret", "token", "credential"]
                .iter()
                .any(|word| lower.contains(word));
            match line.split_once(": ") {
                Some((key, _)) if secret => format!("{key}: \"<redacted>\","),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the flusher needs from the configuration.
fn flush_settings(config: &Config, guard: Arc<SeriesGuard>) -> FlushSettings {
    FlushSettings {
        interval: Duration::from_millis(config.flush.interval_ms),
        bounds: config.bounds(),
        finalize: FinalizeSettings {
            percentiles: Arc::from(config.aggregation.percentiles()),
            global_tags: config
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stats: config
                .stats
                .enabled
                .then(|| (config.stats.prefix.clone(), config.stats.detail)),
            carry: CarrySettings {
                delete_idle_gauges: config.aggregation.delete_idle_gauges,
                idle_zero_flushes: config.aggregation.idle_zero_flushes,
                max_gauges: config.limits.max_gauges,
            },
        },
        guard: Some(guard),
    }
}

/// Raises the soft limit on open files to the hard one, as servers do: the HTTP plane alone
/// may hold `http.max_connections` sockets (1,024 by default), which a soft limit of 1,024
/// would not leave room for.
pub fn raise_open_files_limit() -> nix::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_text_hides_secrets() {
        let text = "Config {\n    properties: {\n        \"sasl.password\": \"hunter2\",\n        \"acks\": \"all\",\n    },\n}";
        let shown = super::redact(text);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("\"sasl.password\": \"<redacted>\","),
            "{shown}"
        );
        assert!(shown.contains("\"acks\": \"all\","), "{shown}");
    }
}
