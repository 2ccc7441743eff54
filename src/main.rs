//! The `rstatsd` binary: CLI, signals, and the process exit code.
//!
//! Exit codes: 0 after a clean shutdown, 1 when start-up fails or a second signal forces
//! the exit, 2 for configuration errors.

use std::process::ExitCode;
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use rstatsd::cli::Cli;
use rstatsd::logging;
use rstatsd::server::{Server, ServerError};

/// Tells systemd (`Type=notify`) about a state change; a no-op outside systemd.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    // Abstract-namespace sockets (`@name`) are not used by systemd's default setup.
    let result = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|socket| socket.send_to(state.as_bytes(), &path));
    if let Err(e) = result {
        log::warn!(
            "cannot notify systemd ({state}) at {}: {e}",
            path.to_string_lossy()
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rstatsd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        if let Some(warning) = config.deprecation_warning() {
            eprintln!("rstatsd: warning: {warning}");
        }
        // Creating the sinks lets librdkafka check its properties too.
        if let Err(e) = rstatsd::sink::registry::build_all(&config.sinks, &config.sink_context()) {
            let e = e.in_file(cli.config.clone());
            eprintln!("rstatsd: {e}");
            return ExitCode::from(2);
        }
        match &cli.config {
            Some(path) => println!("rstatsd: configuration OK ({})", path.display()),
            None => println!("rstatsd: configuration OK (defaults and flags)"),
        }
        return ExitCode::SUCCESS;
    }
    logging::init(config.log.level());
    if let Err(e) = rstatsd::server::raise_open_files_limit() {
        log::warn!("cannot raise the open files limit to its hard limit: {e}");
    }
    if let Some(warning) = config.deprecation_warning() {
        log::warn!("{warning}");
    }

    // Installed before the sockets are bound, so a signal never finds the default action.
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let server = match Server::start(&config) {
        Ok(server) => server,
        Err(ServerError::Config(e)) => {
            log::error!("{}", e.in_file(cli.config.clone()));
            return ExitCode::from(2);
        }
        Err(ServerError::Start(e)) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut listening = Vec::new();
    for (protocol, addr) in server.local_addrs() {
        listening.push(format!("{} udp {addr}", protocol.name()));
    }
    for (name, addr) in server.admin_addrs() {
        listening.push(format!("{name} tcp {addr}"));
    }
    let listening = listening.join(", ");
    log::info!("listening: {listening}");
    log::info!(
        "ready: {} receiver threads, flush every {} ms",
        server.receiver_count(),
        config.flush.interval_ms
    );
    // The status names the bound addresses (ports chosen by the kernel included), for
    // `systemctl status` and for whoever started rstatsd and waits for it to be ready.
    notify_systemd(&format!("READY=1\nSTATUS=listening: {listening}"));

    let shutdown = server.shutdown_handle();
    thread::spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            if signal == SIGHUP {
                // Its default action would kill the daemon without the final flush.
                log::warn!(
                    "SIGHUP: configuration reload is not supported; restart to apply changes"
                );
                continue;
            }
            seen += 1;
            if seen == 1 {
                notify_systemd("STOPPING=1");
            }
            if seen == 1 {
                log::info!(
                    "signal {signal}: draining sockets and flushing (signal again to force exit)"
                );
                shutdown.shutdown();
            } else {
                log::warn!("second signal: exiting without the final flush");
                std::process::exit(1);
            }
        }
    });
    let sinks = server.wait();
    let undelivered: Vec<String> = sinks
        .iter()
        .filter(|(_, t)| t.undelivered > 0)
        .map(|(name, t)| format!("{} in sink {name}", t.undelivered))
        .collect();
    if undelivered.is_empty() {
        log::info!("stopped");
    } else {
        log::error!("stopped; undelivered messages: {}", undelivered.join(", "));
    }
    ExitCode::SUCCESS
}
