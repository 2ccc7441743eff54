//! Opening a spool directory an earlier run left: torn last records truncated, segments with
//! corrupt records moved aside (their good records still delivered).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::record;
use super::{Record, SEGMENT_SUFFIX, Segment, Spool, State};
use crate::sink::SinkCounters;

impl Spool {
    pub(super) fn recover(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.settings.dir)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.settings.dir)? {
            let path = entry?.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                found.push((seq, path));
            }
        }
        found.sort();
        for (seq, path) in found {
            self.next_seq = self.next_seq.max(seq + 1);
            match self.recover_segment(seq, &path) {
                Ok(Some(segment)) => {
                    self.bytes += segment.bytes;
                    self.segments.push_back(segment);
                }
                Ok(None) => {}
                Err(e) => self.write_error(&format!("cannot read {}", path.display()), &e),
            }
        }
        Ok(())
    }

    fn recover_segment(&mut self, seq: u64, path: &Path) -> io::Result<Option<Segment>> {
        let data = fs::read(path)?;
        let scan = record::scan(&data);
        if scan.bad_header {
            let aside = self.move_aside(path)?;
            SinkCounters::add(&self.counters.spool_corrupt, 1);
            log::error!(
                "sink {}: spool segment {} is not a version-1 spool segment; moved aside to {}",
                self.sink,
                path.display(),
                aside.display()
            );
            return Ok(None);
        }
        let mut path = path.to_path_buf();
        let mut bytes = data.len() as u64;
        if let Some(at) = scan.torn_at {
            OpenOptions::new().write(true).open(&path)?.set_len(at)?;
            bytes = at;
            SinkCounters::add(&self.counters.spool_torn, 1);
            log::warn!(
                "sink {}: spool segment {}: the last record (at byte {at}) was torn by a crash; \
                 truncated",
                self.sink,
                path.display()
            );
        }
        if !scan.corrupt.is_empty() {
            let aside = self.move_aside(&path)?;
            SinkCounters::add(&self.counters.spool_corrupt, scan.corrupt.len() as u64);
            log::error!(
                "sink {}: spool segment {}: {} corrupt records (at bytes {:?}) skipped, {} good \
                 ones delivered; moved aside to {}",
                self.sink,
                path.display(),
                scan.corrupt.len(),
                scan.corrupt,
                scan.records.len(),
                aside.display()
            );
            path = aside;
        }
        if scan.records.is_empty() {
            if scan.corrupt.is_empty() {
                fs::remove_file(&path)?;
            }
            return Ok(None);
        }
        Ok(Some(Segment {
            seq,
            path,
            bytes,
            live: scan.records.len(),
            live_messages: scan.records.iter().map(|r| u64::from(r.messages)).sum(),
            records: scan
                .records
                .into_iter()
                .map(|info| Record {
                    info,
                    state: State::Unread,
                })
                .collect(),
            cursor: 0,
        }))
    }

    /// Renames a damaged segment out of the way (`….seg.corrupt`): kept for inspection,
    /// never scanned again.
    fn move_aside(&self, path: &Path) -> io::Result<PathBuf> {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".corrupt");
        let aside = PathBuf::from(aside);
        fs::rename(path, &aside)?;
        Ok(aside)
    }
}
