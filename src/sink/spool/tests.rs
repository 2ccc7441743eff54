use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use std::path::Path;

use super::*;

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rstatsd-spool-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn settings(dir: &Path, max_bytes: u64) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes: 64 << 10,
    }
}

fn batch(flushed_ms: u64, lines: &[&str]) -> Batch {
    let mut b = Batch::default();
    for l in lines {
        b.push(Some(Arc::from("metrics")), Some(l.as_bytes()), l.as_bytes());
    }
    b.set_flushed_ms(flushed_ms);
    b
}

fn payloads(b: &Batch) -> Vec<String> {
    (0..b.len())
        .map(|i| String::from_utf8(b.message(i).payload.to_vec()).unwrap())
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn records_survive_a_restart_in_order_and_delivered_segments_are_deleted() {
    let tmp = TempDir::new();
    let counters: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&counters));
    spool
        .append(&batch(1000, &["a", "b"]), |_| true, State::Unread)
        .unwrap();
    spool
        .append(&batch(2000, &["c", "d"]), |i| i == 1, State::Unread)
        .unwrap();
    drop(spool);

    let counters: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&counters));
    assert_eq!(spool.unread_messages(), 3);
    assert_eq!(counters.totals().spool_records, 2);
    assert_eq!(counters.totals().spool_oldest_ms, 1000);
    let (first, b) = spool.read_next().unwrap();
    assert_eq!(
        (payloads(&b), b.flushed_ms()),
        (vec!["a".into(), "b".into()], 1000)
    );
    assert_eq!(b.message(0).topic.map(|t| &**t), Some("metrics"));
    assert_eq!(b.message(1).key, Some(&b"b"[..]));
    let (second, b) = spool.read_next().unwrap();
    assert_eq!(payloads(&b), vec!["d".to_string()]);
    assert!(spool.read_next().is_none() && !spool.has_unread());
    assert_eq!(counters.totals().spool_replayed, 2);
    spool.complete(first);
    assert_eq!(counters.totals().spool_oldest_ms, 2000);
    assert_eq!(files(&tmp.0).len(), 1);
    spool.complete(second);
    assert!(files(&tmp.0).is_empty(), "{:?}", files(&tmp.0));
    assert_eq!(counters.totals().spool_bytes, 0);
}

#[test]
fn beyond_max_bytes_the_oldest_segments_are_dropped_and_counted() {
    let tmp = TempDir::new();
    let counters: Arc<SinkCounters> = Arc::default();
    let big = "x".repeat(150 << 10); // key and payload: ~300 KiB a record
    // A segment per record (each is larger than segment_bytes); three fit in 1 MiB.
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&counters));
    for ms in 1..=5 {
        spool
            .append(&batch(ms, &[&big]), |_| true, State::Unread)
            .unwrap();
    }
    let totals = counters.totals();
    assert_eq!((totals.spool_dropped, totals.spool_records), (2, 3));
    assert!(totals.spool_bytes <= 1 << 20);
    let (_, b) = spool.read_next().unwrap();
    assert_eq!(b.flushed_ms(), 3, "the oldest two are gone");
    // One record larger than the whole spool is refused, counted, and nothing else lost.
    let huge = "y".repeat(512 << 10);
    assert!(
        spool
            .append(&batch(9, &[&huge]), |_| true, State::Unread)
            .is_none()
    );
    assert_eq!(counters.totals().spool_dropped, 3);
    assert_eq!(counters.totals().spool_records, 3);
}

#[test]
fn a_torn_tail_is_truncated_and_a_corrupt_record_moves_its_segment_aside() {
    let tmp = TempDir::new();
    let counters: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&counters));
    for ms in 1..=4 {
        spool.append(
            &batch(ms, &["line 1 2\n", "line 3 4\n"]),
            |_| true,
            State::Unread,
        );
    }
    drop(spool);
    let name = files(&tmp.0).remove(0);
    let path = tmp.0.join(&name);
    let mut data = fs::read(&path).unwrap();
    let scan = record::scan(&data);
    let starts: Vec<usize> = scan.records.iter().map(|r| r.offset as usize).collect();
    data[starts[1] + 30] ^= 0x01;
    data.truncate(starts[3] + 20);
    fs::write(&path, &data).unwrap();

    let counters: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&counters));
    let totals = counters.totals();
    assert_eq!((totals.spool_torn, totals.spool_corrupt), (1, 1));
    assert_eq!(files(&tmp.0), vec![format!("{name}.corrupt")]);
    let mut got = Vec::new();
    while let Some((id, b)) = spool.read_next() {
        got.push(b.flushed_ms());
        spool.complete(id);
    }
    assert_eq!(got, vec![1, 3], "the good records are delivered");
    // The damaged file stays for inspection and is never scanned again.
    assert_eq!(files(&tmp.0), vec![format!("{name}.corrupt")]);
    drop(spool);
    let again: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open("k", settings(&tmp.0, 1 << 20), Arc::clone(&again));
    assert!(spool.read_next().is_none());
    assert_eq!(again.totals().spool_corrupt, 0);
}

#[test]
fn an_unusable_directory_is_counted_and_never_fatal() {
    let tmp = TempDir::new();
    fs::create_dir_all(&tmp.0).unwrap();
    let file = tmp.0.join("not-a-dir");
    fs::write(&file, b"").unwrap();
    let counters: Arc<SinkCounters> = Arc::default();
    let mut spool = Spool::open(
        "k",
        settings(&file.join("spool"), 1 << 20),
        Arc::clone(&counters),
    );
    assert_eq!(counters.totals().spool_write_errors, 1);
    assert!(
        spool
            .append(&batch(1, &["a"]), |_| true, State::Unread)
            .is_none()
    );
    assert_eq!(counters.totals().spool_write_errors, 2);
    assert!(!spool.has_unread());
}

#[test]
fn sink_names_become_directory_names() {
    let config = SpoolConfig {
        dir: Some(PathBuf::from("/var/lib/rstatsd/spool")),
        ..SpoolConfig::default()
    };
    assert_eq!(
        config.for_sink("graphite/127.0.0.1:2003").unwrap().dir,
        PathBuf::from("/var/lib/rstatsd/spool/graphite_127.0.0.1_2003")
    );
    assert_eq!(SpoolConfig::default().for_sink("kafka"), None);
}
