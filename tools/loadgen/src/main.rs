//! rstatsd-loadgen: offers a paced statsd load to any server, or receives one (`sink` mode).
//!
//! - `rstatsd-loadgen send --target 127.0.0.1:8125 --rate 500000 --duration 10`: several
//!   sender threads, each with its own socket, packing metrics into datagrams and sending
//!   them in `sendmmsg` batches, paced to the target rate.
//! - `rstatsd-loadgen sink --listen 127.0.0.1:8125 --duration 10`: receives with `recvmmsg`
//!   and only counts. The CPU it uses is the machine's floor for receiving that load, the
//!   yardstick for a server's own cost.
//!
//! Both print progress once a second and a summary (`--json` for machine-readable output).
//! `send --verify 127.0.0.1:8080` also reads rstatsd's `/metrics` before and after and
//! reports the loss.

mod generate;
mod send;
mod sink;
mod verify;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "rstatsd-loadgen", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Send a paced load to a statsd server.
    Send(SendArgs),
    /// Receive and count datagrams and metrics, doing nothing else.
    Sink(SinkArgs),
}

/// Wire format of generated metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Etsy/DogStatsD line protocol (`name:1|c|#k:v`).
    Line,
    /// pystatsd JSON objects (one per line).
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Server address (IPv4 or `[IPv6]:port`).
    #[arg(long, default_value = "127.0.0.1:8125")]
    pub target: SocketAddr,
    #[arg(long, value_enum, default_value = "line")]
    pub protocol: Protocol,
    /// Metrics per second over all threads; 0 = as fast as possible.
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Seconds to run (ignored when --count is given).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Total metrics to send, then stop.
    #[arg(long)]
    pub count: Option<u64>,
    /// Sender threads (each with its own socket).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Metrics packed into one datagram (fewer if --max-datagram is reached first).
    #[arg(long, default_value_t = 20)]
    pub per_datagram: usize,
    /// Largest datagram to build, in bytes.
    #[arg(long, default_value_t = 1432)]
    pub max_datagram: usize,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Distinct metric names.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Tags per metric.
    #[arg(long, default_value_t = 0)]
    pub tags: usize,
    /// Type mix as weights, e.g. `c=60,g=10,ms=20,s=5,h=5` (line) or
    /// `counter=50,trace=30,gauge=20` (json).
    #[arg(long)]
    pub mix: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// rstatsd's HTTP endpoint (`127.0.0.1:8080`): read its counters before and after and
    /// report offered vs. received metrics and the loss.
    #[arg(long, value_name = "HOST:PORT")]
    pub verify: Option<String>,
    /// With --verify: give up waiting once the server's count has not moved for this many
    /// seconds (more than its flush interval).
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    pub verify_settle: f64,
}

#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Address to receive on.
    #[arg(long, default_value = "127.0.0.1:8125")]
    pub listen: SocketAddr,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop once this many datagrams arrived.
    #[arg(long)]
    pub datagrams: Option<u64>,
    /// SO_RCVBUF, bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub rcvbuf: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Send(args) => send::run(&args),
        Mode::Sink(args) => sink::run(&args),
    };
    if let Err(e) = result {
        eprintln!("rstatsd-loadgen: {e}");
        std::process::exit(1);
    }
}

/// Seconds as a Duration, for CLI values.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
