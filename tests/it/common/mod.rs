//! Runs the real `rstatsd` binary as a child process on ephemeral loopback ports.

#[cfg(feature = "kafka")]
pub mod kafka;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// A flush interval of one day: the only flush a test sees is the final one at shutdown (a
/// test would have to straddle midnight UTC to see a second one).
pub const LONG_INTERVAL: &str = "86400000";

/// Longest wait for the daemon to report readiness.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Daemon {
    child: Option<Child>,
    pub statsd: Option<SocketAddr>,
    pub pystatsd: Option<SocketAddr>,
    /// The Etsy management interface (TCP).
    pub admin: Option<SocketAddr>,
    /// The HTTP endpoint.
    pub http: Option<SocketAddr>,
    stdout: Option<thread::JoinHandle<Vec<String>>>,
    stderr: Option<thread::JoinHandle<Vec<String>>>,
    /// Each stdout line as it is printed (the console sink's records).
    stdout_lines: mpsc::Receiver<String>,
    /// The readiness socket it was given (`NOTIFY_SOCKET`, as systemd gives one).
    notify: UnixDatagram,
    notify_path: PathBuf,
    /// Its readiness message (`READY=1` and the status naming its addresses).
    pub ready: String,
}

/// One HTTP request to the daemon's endpoint: (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    (status, body.to_string())
}

/// What the daemon printed, after it exited.
pub struct Output {
    pub status: ExitStatus,
    /// Every stdout line, parsed as JSON.
    pub records: Vec<Value>,
    pub stderr: Vec<String>,
    /// The readiness socket's messages after `ready` (`STOPPING=1`).
    pub notified: Vec<String>,
}

impl Output {
    /// Exit code 0 and a last log line saying that everything was delivered.
    pub fn assert_clean_stop(&self) {
        assert!(self.status.success(), "{:?}", self.stderr);
        assert!(
            self.stderr.last().is_some_and(|l| l.ends_with("stopped")),
            "{:?}",
            self.stderr
        );
    }
}

impl Daemon {
    /// Starts `rstatsd` with `args`, listening on ephemeral loopback ports unless `args`
    /// chooses addresses, and waits for its readiness message (systemd's protocol), whose
    /// status names the addresses it bound.
    pub fn start(args: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rstatsd"));

        if !args
            .iter()
            .any(|a| a.starts_with("--statsd-listen") || *a == "--no-statsd")
        {
            cmd.args(["--statsd-listen", "127.0.0.1:0"]);
        }
        if !args
            .iter()
            .any(|a| a.starts_with("--pystatsd-listen") || *a == "--no-pystatsd")
        {
            cmd.args(["--pystatsd-listen", "127.0.0.1:0"]);
        }
        for (flag, off) in [
            ("--admin-listen", "--no-admin"),
            ("--http-listen", "--no-http"),
        ] {
            if !args.iter().any(|a| a.starts_with(flag) || *a == off) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        let notify_path = temp_path("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        cmd.args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rstatsd");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (stdout_tx, stdout_lines) = mpsc::channel();
        let stdout = thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = stdout_tx.send(line.clone());
                lines.push(line);
            }
            lines
        });
        let stderr = thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect()
        });
        let mut daemon = Daemon {
            child: Some(child),
            statsd: None,
            pystatsd: None,
            admin: None,
            http: None,
            stdout: Some(stdout),
            stderr: Some(stderr),
            stdout_lines,
            notify,
            notify_path,
            ready: String::new(),
        };
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        let ready = loop {
            if let Some(message) = daemon.notification() {
                break message;
            }
            let exited = daemon.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if exited || std::time::Instant::now() >= deadline {
                let out = daemon.stop();
                panic!("rstatsd did not become ready: {:?}", out.stderr);
            }
        };
        let status = ready
            .lines()
            .find_map(|l| l.strip_prefix("STATUS=listening: "))
            .unwrap_or_else(|| panic!("no listening status in {ready:?}"));
        for listener in status.split(", ").filter(|l| !l.is_empty()) {
            let mut parts = listener.split(' ');
            let (name, _, addr) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
            let addr: SocketAddr = addr.parse().unwrap();
            match name {
                "statsd" => daemon.statsd = daemon.statsd.or(Some(addr)),
                "pystatsd" => daemon.pystatsd = daemon.pystatsd.or(Some(addr)),
                "admin" => daemon.admin = Some(addr),
                "http" => daemon.http = Some(addr),
                other => panic!("unknown listener {other}"),
            }
        }
        daemon.ready = ready;
        daemon
    }

    /// The daemon with `config` and `extra` flags, no internal statistics, and only the
    /// final flush ([`LONG_INTERVAL`]).
    pub fn start_single_flush(config: &ConfigFile, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--config",
            config.path(),
            "--flush-interval-ms",
            LONG_INTERVAL,
            "--no-stats",
        ];
        args.extend_from_slice(extra);
        Daemon::start(&args)
    }

    /// The next message on the readiness socket, if one arrives within 100 ms.
    fn notification(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    pub fn send_statsd(&self, socket: &UdpSocket, payload: &[u8]) {
        socket
            .send_to(payload, self.statsd.expect("statsd listener"))
            .unwrap();
    }

    pub fn send_pystatsd(&self, socket: &UdpSocket, payload: &[u8]) {
        socket
            .send_to(payload, self.pystatsd.expect("pystatsd listener"))
            .unwrap();
    }

    /// Waits for the next console record whose JSON satisfies `pred` (skipping others).
    pub fn wait_record(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .stdout_lines
                .recv_timeout(left)
                .expect("no matching console record in time");
            let record: Value = serde_json::from_str(&line).unwrap();
            if pred(&record) {
                return record;
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, signal: Signal) {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(pid as i32), signal).unwrap();
    }

    /// SIGKILL (a crash), wait for exit, collect output. (Only the Kafka areas crash one.)
    #[cfg(feature = "kafka")]
    pub fn kill9(mut self) -> Output {
        self.signal(Signal::SIGKILL);
        self.wait()
    }

    /// SIGTERM, wait for exit, collect output.
    pub fn stop(mut self) -> Output {
        self.signal(Signal::SIGTERM);
        self.wait()
    }

    fn wait(&mut self) -> Output {
        let status = self.child.take().unwrap().wait().unwrap();
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let records = stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        let notified = std::iter::from_fn(|| self.notification()).collect();
        Output {
            status,
            records,
            stderr,
            notified,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.notify_path);
    }
}

/// A sender socket on the loopback of the daemon's address family.
pub fn sender(addr: SocketAddr) -> UdpSocket {
    let bind = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    UdpSocket::bind(bind).unwrap()
}

/// (name, type, sorted tags) of a console record.
pub type Id = (String, String, Vec<(String, String)>);

pub fn id(name: &str, mtype: &str, tags: &[(&str, &str)]) -> Id {
    let mut tags: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tags.sort();
    (name.to_string(), mtype.to_string(), tags)
}

pub fn record_id(r: &Value) -> Id {
    let tags = r["tags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (
        r["name"].as_str().unwrap().to_string(),
        r["type"].as_str().unwrap().to_string(),
        tags,
    )
}

/// A record's statistics (`values`), by name.
pub fn record_values(r: &Value) -> BTreeMap<String, f64> {
    r["values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// Every record's values, keyed by series; panics if a series appears in two snapshots.
pub fn by_series(records: &[Value]) -> BTreeMap<Id, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for r in records {
        let values = record_values(r);
        let id = record_id(r);
        assert!(
            out.insert(id.clone(), values).is_none(),
            "{id:?} reported twice"
        );
    }
    out
}

pub fn values(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A path under the temporary directory for `name`, unique in this process: the areas share
/// one test process, and two of them may pick the same name (`graphite`, say).
fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("rstatsd-test-{}-{n}-{name}", std::process::id()))
}

/// A per-test config file, removed when dropped.
pub struct ConfigFile(PathBuf);

impl ConfigFile {
    pub fn new(name: &str, text: &str) -> ConfigFile {
        let path = temp_path(&format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A per-test directory, removed (with its contents) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = temp_path(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls the daemon's `/metrics` until `metric` (a full Prometheus series name with its
/// labels, e.g. `rstatsd_sink_spool_records{sink="kafka"}`) satisfies `ok`; returns its value.
pub fn wait_metric(d: &Daemon, metric: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        last = metric_value(d, metric).or(last);
        if let Some(v) = last
            && ok(v)
        {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            let (_, body) = http(d.http.expect("http endpoint"), "GET", "/metrics");
            panic!("{metric} never reached the expected value (last: {last:?}); /metrics:\n{body}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The current value of one `/metrics` series, if present.
pub fn metric_value(d: &Daemon, metric: &str) -> Option<f64> {
    let (_, body) = http(d.http.expect("http endpoint"), "GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' ')?.parse().ok())
}

/// Tests that load both cores (five daemons, ten million series, a million increments on
/// four receivers) hold this while they run: in the one test binary they would otherwise
/// share the two cores with another such test, and their deadlines with it.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}
