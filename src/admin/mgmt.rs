//! Etsy statsd's management interface: line commands over TCP (default 127.0.0.1:8126).
//!
//! | command | answer |
//! |---|---|
//! | `health` | `health: up` (or `down`) |
//! | `health up` / `health down` | sets and answers the state; `down` makes `/health` answer 503, for draining |
//! | `stats` | `uptime: N`, `messages.last_msg_seen: N` (seconds ago), `messages.bad_lines_seen: N`, every internal statistic since start, `END` |
//! | `counters`, `timers`, `gauges`, `sets` | the last flush's values as a JSON object keyed by `name;k=v`, then `END` |
//! | `delcounters`, `deltimers`, `delgauges`, `delsets` `<name \| prefix.*> …` | `deleted: <name>` per series (`metric <arg> not found` when none), `END` |
//! | `config` | the effective configuration, `END` |
//! | `help` | the command list |
//! | `quit` | closes the connection |
//! | anything else | `ERROR` |
//!
//! Blocks end with `END` and an empty line, as in Etsy. A connection may send any number
//! of commands, each on its own thread; at most `admin.max_connections` are served at once
//! (another is answered `ERROR too many connections`, closed and counted in
//! `admin_connections_refused`), and one idle for `admin.idle_timeout_ms` is closed (counted
//! in `admin_timeouts`).

use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use super::{AdminConfig, AdminState, series_id};
use crate::aggregate::SetValue;
use crate::format::json::write_str;
use crate::format::number::js_number;
use crate::metric::MetricType;
use crate::snapshot::Fields;

/// Longest command line accepted.
const MAX_LINE: usize = 4096;

/// Etsy's four views, and which metric types each shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Counters,
    Timers,
    Gauges,
    Sets,
}

impl View {
    fn of(t: MetricType) -> View {
        match t {
            MetricType::Counter | MetricType::Trace => View::Counters,
            MetricType::Timer | MetricType::Histogram | MetricType::Distribution => View::Timers,
            MetricType::Gauge => View::Gauges,
            MetricType::Set => View::Sets,
        }
    }

    fn types(self) -> &'static [MetricType] {
        match self {
            View::Counters => &[MetricType::Counter, MetricType::Trace],
            View::Timers => &[
                MetricType::Timer,
                MetricType::Histogram,
                MetricType::Distribution,
            ],
            View::Gauges => &[MetricType::Gauge],
            View::Sets => &[MetricType::Set],
        }
    }
}

/// Starts the accept thread on a bound listener.
pub fn spawn(
    listener: TcpListener,
    state: Arc<AdminState>,
    config: &AdminConfig,
) -> io::Result<()> {
    let (max, idle) = (config.max_connections as u64, config.idle_timeout());
    thread::Builder::new()
        .name("admin-mgmt".into())
        .spawn(move || {
            let active = &state.counters.admin_connections;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if active.fetch_add(1, Ordering::SeqCst) >= max {
                    active.fetch_sub(1, Ordering::SeqCst);
                    state.counters.admin_refused.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(b"ERROR too many connections\n");
                    continue;
                }
                let state = Arc::clone(&state);
                let spawned = thread::Builder::new()
                    .name("admin-conn".into())
                    .spawn(move || {
                        let peer = stream.peer_addr().ok();
                        match serve(&stream, &state, idle) {
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                                ) =>
                            {
                                state
                                    .counters
                                    .admin_timeouts
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => log::debug!("admin connection {peer:?}: {e}"),
                            Ok(()) => {}
                        }
                        state
                            .counters
                            .admin_connections
                            .fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                    log::error!("admin: cannot start a connection thread");
                }
            }
        })?;
    Ok(())
}

fn serve(stream: &TcpStream, state: &AdminState, idle: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(idle))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(0);
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        reader.set_limit(MAX_LINE as u64);
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && line.len() >= MAX_LINE {
            out.write_all(b"ERROR line too long\n")?;
            return out.flush();
        }
        if !answer(line.trim(), state, &mut out)? {
            return out.flush();
        }
        out.flush()?;
    }
}

/// Answers one command; false means close the connection.
pub fn answer(line: &str, state: &AdminState, out: &mut impl Write) -> io::Result<bool> {
    let mut words = line.split_whitespace();
    let Some(command) = words.next() else {
        return Ok(true);
    };
    let args: Vec<&str> = words.collect();
    match command {
        "help" => out.write_all(
            b"Commands: stats, counters, timers, gauges, sets, delcounters, deltimers, \
              delgauges, delsets, health, config, help, quit\n\n",
        )?,
        "health" => {
            match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
                Some("up") => state.set_healthy(true),
                Some("down") => state.set_healthy(false),
                _ => {}
            }
            let status = if state.healthy() { "up" } else { "down" };
            writeln!(out, "health: {status}")?;
        }
        "stats" => stats(state, out)?,
        "counters" => view(state, View::Counters, out)?,
        "timers" => view(state, View::Timers, out)?,
        "gauges" => view(state, View::Gauges, out)?,
        "sets" => view(state, View::Sets, out)?,
        "delcounters" => delete(state, View::Counters.types(), &args, out)?,
        "deltimers" => delete(state, View::Timers.types(), &args, out)?,
        "delgauges" => delete(state, View::Gauges.types(), &args, out)?,
        "delsets" => delete(state, View::Sets.types(), &args, out)?,
        "config" => {
            out.write_all(state.config_text().as_bytes())?;
            out.write_all(b"\nEND\n\n")?;
        }
        "quit" => return Ok(false),
        _ => out.write_all(b"ERROR\n")?,
    }
    Ok(true)
}

fn stats(state: &AdminState, out: &mut impl Write) -> io::Result<()> {
    let now = crate::format::time::unix_millis(std::time::SystemTime::now()) / 1000;
    let totals = state.totals();
    let bad_lines: f64 = totals
        .counters
        .iter()
        .filter(|((name, _), _)| name == "bad_lines")
        .map(|(_, v)| v)
        .sum();
    writeln!(out, "uptime: {}", state.uptime_secs())?;
    writeln!(
        out,
        "messages.last_msg_seen: {}",
        now.saturating_sub(state.last_msg_seen())
    )?;
    writeln!(out, "messages.bad_lines_seen: {}", js_number(bad_lines))?;
    for ((name, tags), v) in totals.counters.iter().chain(totals.gauges.iter()) {
        write!(out, "rstatsd.{name}")?;
        for (k, v) in tags {
            write!(out, ";{k}={v}")?;
        }
        writeln!(out, ": {}", js_number(*v))?;
    }
    out.write_all(b"END\n\n")
}

/// `{"name;k=v": value, …}` of the last flush for the given types.
fn view(state: &AdminState, view: View, out: &mut impl Write) -> io::Result<()> {
    let mut text = String::from("{");
    if let Some(snapshot) = state.latest() {
        let mut series: Vec<_> = snapshot
            .series
            .iter()
            .filter(|(k, _)| View::of(k.metric_type()) == view)
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let any = !series.is_empty();
        for (i, (key, value)) in series.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str("\n  ");
            write_str(&mut text, &series_id(key));
            text.push_str(": ");
            match snapshot.fields(value) {
                Fields::Counter { count, .. } | Fields::Trace { count } => {
                    text.push_str(&js_number(count))
                }
                Fields::Gauge { value } => text.push_str(&js_number(value)),
                // Past the sample cap: the sketch's bins as [value, count] pairs.
                Fields::Timer(timer) if timer.samples.sketched.is_some() => {
                    let bins: Vec<String> = timer
                        .samples
                        .weighted()
                        .map(|(v, c)| format!("[{}, {c}]", js_number(v)))
                        .collect();
                    text.push_str(&format!("{{\"sketch\": [{}]}}", bins.join(", ")));
                }
                Fields::Timer(timer) => {
                    text.push('[');
                    let values: Vec<String> =
                        timer.samples.values.iter().map(|v| js_number(*v)).collect();
                    text.push_str(&values.join(", "));
                    text.push(']');
                }
                Fields::Set {
                    set: SetValue::Estimated(hll),
                } => {
                    let estimate = js_number(hll.estimate().round());
                    text.push_str(&format!("{{\"estimate\": {estimate}}}"));
                }
                Fields::Set {
                    set: SetValue::Exact(exact),
                } => {
                    let mut members: Vec<&str> = exact.members().collect();
                    members.sort_unstable();
                    text.push('[');
                    for (j, m) in members.into_iter().enumerate() {
                        if j > 0 {
                            text.push_str(", ");
                        }
                        write_str(&mut text, m);
                    }
                    text.push(']');
                }
            }
        }
        if any {
            text.push('\n');
        }
    }
    text.push_str("}\nEND\n\n");
    out.write_all(text.as_bytes())
}

fn delete(
    state: &AdminState,
    types: &'static [MetricType],
    args: &[&str],
    out: &mut impl Write,
) -> io::Result<()> {
    for pattern in args {
        let deleted = state.delete(types, pattern);
        if deleted.is_empty() {
            writeln!(out, "metric {pattern} not found")?;
        }
        for name in deleted {
            writeln!(out, "deleted: {name}")?;
        }
    }
    out.write_all(b"END\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_in_the_view_it_is_deleted_from() {
        for t in MetricType::ALL {
            assert!(View::of(t).types().contains(&t), "{t}");
        }
    }

    #[test]
    fn sketched_timers_and_estimated_sets_show_their_state() {
        use crate::aggregate::{Bounds, Value};
        use crate::metric::{Sample, SeriesKey};
        use crate::snapshot::Snapshot;
        let bounds = Bounds {
            max_timer_samples: 1,
            set_exact_members: 1,
            ..Bounds::default()
        };
        let mut timer = Value::empty(MetricType::Timer);
        let mut set = Value::empty(MetricType::Set);
        for (v, m) in [(1.0, "a"), (1.0, "b"), (2.0, "c")] {
            timer.update(&Sample::Value(v), 1.0, 0, &bounds);
            set.update(&Sample::Member(m.into()), 1.0, 0, &bounds);
        }
        let none: [(&str, &str); 0] = [];
        let state = AdminState::new(String::new(), Vec::new());
        let snapshot = Snapshot {
            timestamp_ms: 0,
            interval: Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series: vec![
                (SeriesKey::new("t", MetricType::Timer, none), timer),
                (SeriesKey::new("u", MetricType::Set, none), set),
            ],
        };
        state.publish(Arc::new(snapshot), &[]);
        let ask = |command: &str| {
            let mut out = Vec::new();
            answer(command, &state, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        // Bins -1 and 63 of scale 6 (1 and 2 are their upper bounds), reported as 2γ^(i+1)/(1+γ).
        assert_eq!(
            ask("timers"),
            "{\n  \"t\": {\"sketch\": [[0.9945848405840976, 2], [1.9891696811681951, 1]]}\n}\nEND\n\n"
        );
        assert_eq!(ask("sets"), "{\n  \"u\": {\"estimate\": 3}\n}\nEND\n\n");
    }
}
