//! The HTTP plane's event loop: one thread, non-blocking sockets (mio, epoll underneath, no
//! async runtime), every connection a small state machine with its own deadline.
//!
//! Bounds, each a setting (`[http]`):
//! - at most `max_connections` open; a connection beyond is accepted and closed at once,
//!   and counted (`http_connections_refused`), so the listen backlog never fills up;
//! - a request head (request line and headers) of at most [`MAX_REQUEST`] bytes, which must
//!   arrive whole within `read_timeout` of the connection or of the previous answer; a
//!   connection that sends nothing, or too slowly, is closed then (counted in
//!   `http_timeouts` unless it was an idle keep-alive connection between requests);
//! - an answer the client has not taken within `write_timeout` is dropped with its
//!   connection (counted): a client that does not read holds only its own buffers.
//!
//! Memory is bounded by the connections: a head buffer each, and an answer while it is
//! being written. HTTP/1.1 connections are kept alive unless the client says
//! `Connection: close`; HTTP/1.0 ones only when it asks for `keep-alive`. A request with a
//! body (not one of ours) is answered and its connection closed, so the body is never read
//! as a request.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::Answer;
use crate::logging::RateLimit;
use crate::stats::PlaneCounters;

/// Largest request head accepted; a longer one is answered `431` and the connection closed.
pub const MAX_REQUEST: usize = 8192;

const LISTENER: Token = Token(usize::MAX);

/// After an accept failed for want of file descriptors, accepting is retried this often
/// (the listener's readiness is edge-triggered: no new event comes for the waiting ones).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What bounds the HTTP plane (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

/// One request, as the handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    bounds: Bounds,
}

struct Connection {
    stream: TcpStream,
    /// Bytes of the request head being read.
    input: Vec<u8>,
    /// The answer being written, and how much of it is.
    output: Vec<u8>,
    written: usize,
    /// Until when the current request may arrive, or the current answer be taken.
    deadline: Instant,
    /// Close once the answer is written.
    closing: bool,
    /// The client closed its side.
    eof: bool,
    /// Requests answered on this connection.
    answered: u64,
}

impl Server {
    pub fn new(listener: std::net::TcpListener, bounds: Bounds) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            bounds,
        })
    }

    /// Serves until the process exits; `handler` answers each request and names the path
    /// it is counted under.
    pub fn run(
        mut self,
        handler: impl Fn(&Request<'_>) -> (Answer, &'static str),
        counters: &PlaneCounters,
    ) {
        let mut events = Events::with_capacity(256);
        let mut connections: HashMap<usize, Connection> = HashMap::new();
        let mut next_token = 0usize;
        let mut accept_pending = false;
        let mut errors = RateLimit::new(Duration::from_secs(10));
        loop {
            let now = Instant::now();
            let mut timeout = connections
                .values()
                .map(|c| c.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            if accept_pending {
                timeout = timeout.min(ACCEPT_RETRY);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                log::error!("http: the event loop failed, /health and /metrics stop: {e}");
                return;
            }
            let now = Instant::now();
            let mut accept = accept_pending;
            for event in events.iter() {
                let token = event.token();
                if token == LISTENER {
                    accept = true;
                    continue;
                }
                let Some(conn) = connections.get_mut(&token.0) else {
                    continue;
                };
                if !conn.drive(&handler, counters, &self.bounds, now) {
                    self.close(&mut connections, token.0, counters);
                }
            }
            if accept {
                accept_pending = self.accept(
                    &mut connections,
                    &mut next_token,
                    &handler,
                    counters,
                    &mut errors,
                );
            }
            let expired: Vec<usize> = connections
                .iter()
                .filter(|(_, c)| c.deadline <= now)
                .map(|(&id, _)| id)
                .collect();
            for id in expired {
                let conn = &connections[&id];
                let idle = conn.answered > 0 && conn.input.is_empty() && conn.output.is_empty();
                if !idle {
                    counters.http_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                self.close(&mut connections, id, counters);
            }
        }
    }

    /// Accepts every waiting connection; true when accepting must be retried (out of file
    /// descriptors).
    fn accept(
        &mut self,
        connections: &mut HashMap<usize, Connection>,
        next_token: &mut usize,
        handler: &impl Fn(&Request<'_>) -> (Answer, &'static str),
        counters: &PlaneCounters,
        errors: &mut RateLimit,
    ) -> bool {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the connection stays in the backlog for later.
                    if let Some(suppressed) = errors.allow() {
                        log::warn!(
                            "http: cannot accept a connection: {e} ({suppressed} more since \
                             the last report)"
                        );
                    }
                    return true;
                }
            };
            if connections.len() >= self.bounds.max_connections {
                counters.http_refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let token = *next_token;
            *next_token = next_token.wrapping_add(1) % LISTENER.0;
            let registered = self.poll.registry().register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            );
            if registered.is_err() {
                continue;
            }
            let now = Instant::now();
            let mut conn = Connection {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                deadline: now + self.bounds.read_timeout,
                closing: false,
                eof: false,
                answered: 0,
            };
            // The request may be there already; edge-triggered readiness would not say so
            // again.
            if conn.drive(handler, counters, &self.bounds, now) {
                connections.insert(token, conn);
                counters
                    .http_connections
                    .store(connections.len() as u64, Ordering::Relaxed);
            } else {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    fn close(
        &self,
        connections: &mut HashMap<usize, Connection>,
        id: usize,
        counters: &PlaneCounters,
    ) {
        if let Some(mut conn) = connections.remove(&id) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        counters
            .http_connections
            .store(connections.len() as u64, Ordering::Relaxed);
    }
}

impl Connection {
    /// Does all the connection can do now: writes the pending answer, answers a complete
    /// request, reads more. False when it is to be closed.
    fn drive(
        &mut self,
        handler: &impl Fn(&Request<'_>) -> (Answer, &'static str),
        counters: &PlaneCounters,
        bounds: &Bounds,
        now: Instant,
    ) -> bool {
        loop {
            if self.written < self.output.len() {
                match self.stream.write(&self.output[self.written..]) {
                    Ok(0) => return false,
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
                continue;
            }
            if !self.output.is_empty() {
                self.output = Vec::new();
                self.written = 0;
                if self.closing {
                    return false;
                }
                self.deadline = now + bounds.read_timeout;
            }
            if let Some(end) = head_end(&self.input) {
                let (bytes, close) = respond(&self.input[..end], handler, counters);
                self.input.drain(..end);
                self.output = bytes;
                self.closing = close;
                self.answered += 1;
                self.deadline = now + bounds.write_timeout;
                continue;
            }
            if self.input.len() >= MAX_REQUEST {
                let (bytes, _) = error_answer(431, "request header fields too large\n");
                counters.http_request("other", 431);
                self.output = bytes;
                self.closing = true;
                self.deadline = now + bounds.write_timeout;
                continue;
            }
            if self.eof {
                return false;
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// The length of the request head at the start of `input` (through its blank line), once
/// it is all there.
fn head_end(input: &[u8]) -> Option<usize> {
    let crlf = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = input.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The answer to one request head, as bytes, and whether to close after it.
fn respond(
    head: &[u8],
    handler: &impl Fn(&Request<'_>) -> (Answer, &'static str),
    counters: &PlaneCounters,
) -> (Vec<u8>, bool) {
    let Ok(head) = std::str::from_utf8(head) else {
        counters.http_request("other", 400);
        return error_answer(400, "bad request\n");
    };
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        counters.http_request("other", 400);
        return error_answer(400, "bad request\n");
    };
    let (mut keep_alive, mut has_body) = match version {
        "HTTP/1.1" => (true, false),
        "HTTP/1.0" => (false, false),
        _ => {
            counters.http_request("other", 505);
            return error_answer(505, "HTTP version not supported\n");
        }
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            has_body = true;
        }
    }
    let (answer, label) = handler(&Request { method, path });
    counters.http_request(label, answer.status);
    let close = !keep_alive || has_body;
    let mut out = Vec::with_capacity(answer.body.len() + 160);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len(),
        if close { "close" } else { "keep-alive" },
    );
    if answer.status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if method != "HEAD" {
        out.extend_from_slice(answer.body.as_bytes());
    }
    (out, close)
}

/// An answer to a request that cannot be served; the connection closes after it.
fn error_answer(status: u16, body: &str) -> (Vec<u8>, bool) {
    let out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    (out.into_bytes(), true)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(r: &Request<'_>) -> (Answer, &'static str) {
        let body = format!("{} {}", r.method, r.path);
        let answer = Answer {
            status: if r.method == "POST" { 405 } else { 200 },
            content_type: "text/plain",
            body,
        };
        (answer, "other")
    }

    fn text(head: &str) -> (String, bool) {
        let counters = PlaneCounters::default();
        let (bytes, close) = respond(head.as_bytes(), &answer, &counters);
        (String::from_utf8(bytes).unwrap(), close)
    }

    #[test]
    fn heads_end_at_the_first_blank_line_of_either_kind() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let (out, close) = text("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\
             Connection: keep-alive\r\n\r\nGET /a"
        );
        assert!(!close);
        assert!(text("GET /a HTTP/1.1\r\nconnection: Close\r\n\r\n").1);
        assert!(text("GET /a HTTP/1.0\r\n\r\n").1);
        assert!(!text("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").1);
    }

    #[test]
    fn head_answers_headers_only_and_bodies_close_the_connection() {
        let (out, close) = text("HEAD /a HTTP/1.1\r\n\r\n");
        assert!(
            out.ends_with("Content-Length: 7\r\nConnection: keep-alive\r\n\r\n"),
            "{out}"
        );
        assert!(!close);
        let (out, close) = text("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{out}"
        );
        assert!(
            out.contains("Connection: close\r\nAllow: GET, HEAD\r\n\r\n"),
            "{out}"
        );
        assert!(close);
    }

    #[test]
    fn malformed_heads_are_refused_and_counted() {
        let counters = PlaneCounters::default();
        for head in ["GET /\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n", "\u{0}\r\n\r\n"] {
            let (out, close) = respond(head.as_bytes(), &answer, &counters);
            assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"), "{head:?}");
            assert!(close);
        }
        let (out, _) = respond(b"GET / HTTP/2.0\r\n\r\n", &answer, &counters);
        assert!(out.starts_with(b"HTTP/1.1 505 "));
        assert_eq!(
            counters.read().http_requests,
            [(("other", 400), 3), (("other", 505), 1)].into()
        );
    }
}
