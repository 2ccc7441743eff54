//! The disk spool behind a sink's delivery buffer: what the destination has not taken yet,
//! kept across outages, crashes and restarts.
//!
//! This module owns the `[spool]` section and one [`Spool`] per sink (a directory
//! `<spool.dir>/<sink>`): append-only segment files of records ([`record`], format in
//! `FORMAT.md`), each record one snapshot's undelivered messages, written with one
//! `fdatasync`. Records are read back oldest first; a segment is deleted once every record in
//! it is delivered. The [`crate::sink::buffer::DeliveryBuffer`] decides *what* goes to disk
//! and *when*; the spool only stores, reads back and forgets.
//!
//! Failure is never fatal: a directory that cannot be written, a full disk, a corrupt or torn
//! file are logged (rate-limited), counted (`sink_spool_*`) and worked around — the sink keeps
//! running on its memory buffer. Beyond `max_bytes` the oldest segments are dropped and
//! counted: the one loss the spool allows, and a visible one.

mod config;
pub mod record;
mod recover;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::config::{SpoolConfig, SpoolSettings};
use self::record::{RecordInfo, SEGMENT_HEADER_BYTES};
use crate::logging::RateLimit;
use crate::sink::SinkCounters;
use crate::sink::batch::Batch;

/// Where a record is: its segment's sequence number and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId {
    segment: u64,
    index: u32,
}

/// A record's place in the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On disk only; [`Spool::read_next`] will read it back.
    Unread,
    /// Also in memory (read back, or written while its batch stays in memory): the buffer
    /// owns its delivery and calls [`Spool::complete`].
    Out,
    Done,
}

#[derive(Debug)]
struct Record {
    info: RecordInfo,
    state: State,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    records: Vec<Record>,
    /// Records not yet [`State::Done`], and the messages in them.
    live: usize,
    live_messages: u64,
    /// Records before this index are not [`State::Unread`].
    cursor: usize,
}

/// The segment appends go to.
#[derive(Debug)]
struct Writer {
    seq: u64,
    file: File,
}

/// One sink's spool (see the module docs).
#[derive(Debug)]
pub struct Spool {
    sink: String,
    settings: SpoolSettings,
    /// Oldest first, by sequence number.
    segments: VecDeque<Segment>,
    writer: Option<Writer>,
    next_seq: u64,
    bytes: u64,
    scratch: Vec<u8>,
    counters: Arc<SinkCounters>,
    errors: RateLimit,
    /// After a failed write, appends are refused without trying until then: a full disk
    /// is not hammered (nor counted) on every pump.
    retry_at: Option<Instant>,
}

/// How long appends pause after a failed write.
const WRITE_RETRY: Duration = Duration::from_secs(5);

const SEGMENT_SUFFIX: &str = ".seg";

impl Spool {
    /// Opens (creating) the spool directory and recovers what an earlier run left: torn last
    /// records are truncated, segments with corrupt records are moved aside (their good
    /// records still delivered), a directory that cannot be used is logged and counted and
    /// tried again at the next write.
    pub fn open(sink: &str, settings: SpoolSettings, counters: Arc<SinkCounters>) -> Spool {
        let mut spool = Spool {
            sink: sink.to_string(),
            settings,
            segments: VecDeque::new(),
            writer: None,
            next_seq: 1,
            bytes: 0,
            scratch: Vec::new(),
            counters,
            errors: RateLimit::new(Duration::from_secs(10)),
            retry_at: None,
        };
        if let Err(e) = spool.recover() {
            spool.write_error(&format!("cannot open {}", spool.settings.dir.display()), &e);
        }
        let (records, messages) = spool.segments.iter().fold((0, 0u64), |(r, m), s| {
            let messages: u64 = s.records.iter().map(|r| u64::from(r.info.messages)).sum();
            (r + s.records.len(), m + messages)
        });
        if records > 0 {
            log::info!(
                "sink {sink}: spool {}: {records} snapshots ({messages} messages, {} bytes) from \
                 an earlier run, delivering them first",
                spool.settings.dir.display(),
                spool.bytes
            );
        }
        spool.publish();
        spool
    }

    fn write_error(&mut self, what: &str, e: &io::Error) {
        SinkCounters::add(&self.counters.spool_write_errors, 1);
        if let Some(suppressed) = self.errors.allow() {
            log::error!(
                "sink {}: spool: {what}: {e}; keeping snapshots in memory ({suppressed} more \
                 spool errors since the last report)",
                self.sink
            );
        }
    }

    /// True when records wait to be read back.
    pub fn has_unread(&self) -> bool {
        self.segments.iter().any(|s| s.cursor < s.records.len())
    }

    /// Writes the messages of `batch` that `keep` selects as one record (one `fdatasync`).
    /// `None` when nothing was selected or the write failed (counted and logged; the caller
    /// keeps the batch in memory).
    pub fn append(
        &mut self,
        batch: &Batch,
        keep: impl Fn(usize) -> bool,
        state: State,
    ) -> Option<RecordId> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let messages = record::encode(batch, keep, &mut scratch);
        let id = if messages == 0 {
            None
        } else {
            self.write(&scratch, messages, batch.flushed_ms(), state)
        };
        self.scratch = scratch;
        self.publish();
        id
    }

    fn write(
        &mut self,
        data: &[u8],
        messages: u32,
        flushed_ms: u64,
        state: State,
    ) -> Option<RecordId> {
        let len = data.len() as u64;
        if len + SEGMENT_HEADER_BYTES as u64 > self.settings.max_bytes {
            SinkCounters::add(&self.counters.spool_dropped, 1);
            log::error!(
                "sink {}: a snapshot of {len} bytes exceeds spool.max_bytes ({}): dropped",
                self.sink,
                self.settings.max_bytes
            );
            return None;
        }
        self.make_room(len);
        let result = self.write_record(data);
        match result {
            Ok((seq, offset)) => {
                let segment = self.segments.back_mut().expect("the writer's segment");
                debug_assert_eq!(segment.seq, seq);
                segment.bytes += len;
                segment.live += 1;
                segment.live_messages += u64::from(messages);
                let index = segment.records.len() as u32;
                if state != State::Unread && segment.cursor == segment.records.len() {
                    segment.cursor += 1;
                }
                segment.records.push(Record {
                    info: RecordInfo {
                        offset,
                        len: len as u32,
                        messages,
                        flushed_ms,
                    },
                    state,
                });
                self.bytes += len;
                SinkCounters::add(&self.counters.spool_written, 1);
                Some(RecordId {
                    segment: seq,
                    index,
                })
            }
            Err(e) => {
                // A part may have reached the file: this segment takes no more appends (a
                // later scan truncates the torn tail).
                self.writer = None;
                self.retry_at = Some(Instant::now() + WRITE_RETRY);
                let dir = self.settings.dir.display().to_string();
                self.write_error(&format!("cannot write to {dir}"), &e);
                None
            }
        }
    }

    /// Appends to the current segment, starting a new one when it is full; returns the
    /// segment and the record's offset in it.
    fn write_record(&mut self, data: &[u8]) -> io::Result<(u64, u64)> {
        let full = match (&self.writer, self.segments.back()) {
            (Some(w), Some(s)) if s.seq == w.seq => {
                s.bytes + data.len() as u64 > self.settings.segment_bytes
            }
            _ => true,
        };
        if full {
            self.writer = None;
            self.start_segment()?;
        }
        let writer = self.writer.as_mut().expect("started above");
        let segment = self.segments.back().expect("started above");
        let offset = segment.bytes;
        writer.file.write_all(data)?;
        writer.file.sync_data()?;
        Ok((writer.seq, offset))
    }

    fn start_segment(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.settings.dir)?;
        let seq = self.next_seq;
        let path = self.settings.dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.write_all(&record::segment_header())?;
        file.sync_data()?;
        // The new name must survive a crash too.
        File::open(&self.settings.dir)?.sync_all()?;
        self.next_seq += 1;
        self.bytes += SEGMENT_HEADER_BYTES as u64;
        self.segments.push_back(Segment {
            seq,
            path,
            bytes: SEGMENT_HEADER_BYTES as u64,
            records: Vec::new(),
            live: 0,
            live_messages: 0,
            cursor: 0,
        });
        self.writer = Some(Writer { seq, file });
        Ok(())
    }

    /// Drops the oldest segments until `len` more bytes fit in `max_bytes`; what was still
    /// waiting in them is counted as dropped.
    fn make_room(&mut self, len: u64) {
        while self.bytes + len + SEGMENT_HEADER_BYTES as u64 > self.settings.max_bytes {
            let Some(oldest) = self.segments.pop_front() else {
                return;
            };
            if self.writer.as_ref().is_some_and(|w| w.seq == oldest.seq) {
                self.writer = None;
            }
            self.bytes -= oldest.bytes;
            let waiting: Vec<&Record> = oldest
                .records
                .iter()
                .filter(|r| r.state == State::Unread)
                .collect();
            let messages: u64 = waiting.iter().map(|r| u64::from(r.info.messages)).sum();
            SinkCounters::add(&self.counters.spool_dropped, waiting.len() as u64);
            log::error!(
                "sink {}: spool full (spool.max_bytes = {}): dropped the oldest segment, {} \
                 snapshots ({messages} messages)",
                self.sink,
                self.settings.max_bytes,
                waiting.len()
            );
            if let Err(e) = fs::remove_file(&oldest.path) {
                let what = format!("cannot delete {}", oldest.path.display());
                self.write_error(&what, &e);
            }
        }
    }

    /// Reads the oldest unread record back. A record that no longer reads back whole (the
    /// file changed under us) is counted as corrupt and skipped.
    pub fn read_next(&mut self) -> Option<(RecordId, Batch)> {
        loop {
            let segment = self
                .segments
                .iter_mut()
                .find(|s| s.cursor < s.records.len())?;
            let index = segment.cursor;
            segment.cursor += 1;
            while segment.cursor < segment.records.len()
                && segment.records[segment.cursor].state != State::Unread
            {
                segment.cursor += 1;
            }
            let record = &mut segment.records[index];
            if record.state != State::Unread {
                continue;
            }
            record.state = State::Out;
            let info = record.info;
            let (seq, path) = (segment.seq, segment.path.clone());
            let id = RecordId {
                segment: seq,
                index: index as u32,
            };
            let mut data = vec![0u8; info.len as usize];
            let read = File::open(&path).and_then(|f| f.read_exact_at(&mut data, info.offset));
            match read.ok().and_then(|()| record::decode(&data)) {
                Some(mut batch) => {
                    batch.set_flushed_ms(info.flushed_ms);
                    SinkCounters::add(&self.counters.spool_replayed, 1);
                    self.publish();
                    return Some((id, batch));
                }
                None => {
                    SinkCounters::add(&self.counters.spool_corrupt, 1);
                    log::error!(
                        "sink {}: spool segment {}: the record at byte {} no longer reads back; \
                         skipped",
                        self.sink,
                        path.display(),
                        info.offset
                    );
                    self.complete(id);
                }
            }
        }
    }

    /// Marks a record delivered; a segment whose records are all delivered is deleted.
    pub fn complete(&mut self, id: RecordId) {
        let Ok(i) = self.segments.binary_search_by_key(&id.segment, |s| s.seq) else {
            return; // dropped for max_bytes meanwhile
        };
        let segment = &mut self.segments[i];
        let record = &mut segment.records[id.index as usize];
        if record.state == State::Done {
            return;
        }
        record.state = State::Done;
        segment.live -= 1;
        segment.live_messages -= u64::from(record.info.messages);
        if segment.live == 0 {
            let segment = self.segments.remove(i).expect("found above");
            if self.writer.as_ref().is_some_and(|w| w.seq == segment.seq) {
                self.writer = None;
            }
            self.bytes -= segment.bytes;
            if segment.path.extension().is_some_and(|e| e == "corrupt") {
                // Kept for inspection; its good records are delivered.
            } else if let Err(e) = fs::remove_file(&segment.path) {
                let what = format!("cannot delete {}", segment.path.display());
                self.write_error(&what, &e);
            }
        }
        self.publish();
    }

    /// Messages in records not read back yet.
    pub fn unread_messages(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| &s.records[s.cursor..])
            .filter(|r| r.state == State::Unread)
            .map(|r| u64::from(r.info.messages))
            .sum()
    }

    /// Updates the spool gauges.
    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        c.spool_bytes.store(self.bytes, Relaxed);
        let live = self.segments.iter().map(|s| s.live as u64).sum();
        c.spool_records.store(live, Relaxed);
        let messages = self.segments.iter().map(|s| s.live_messages).sum::<u64>();
        c.spool_messages.store(messages, Relaxed);
        // Segments are in flush order, so the oldest record is in the first live one.
        let oldest = self
            .segments
            .iter()
            .find(|s| s.live > 0)
            .and_then(|s| {
                let live = s.records.iter().filter(|r| r.state != State::Done);
                live.map(|r| r.info.flushed_ms).min()
            })
            .unwrap_or(0);
        c.spool_oldest_ms.store(oldest, Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod tests;
