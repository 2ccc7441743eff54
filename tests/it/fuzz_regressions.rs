//! Replays every fuzz seed (`fuzz/corpus_seeds/`) and every past crash (`fuzz/regressions/`)
//! through the harness its fuzz target runs (`rstatsd::fuzzing`).

use std::path::Path;

#[test]
fn every_seed_and_past_crash_runs_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, harness) in TARGETS {
        let seeds = replay(&fuzz.join("corpus_seeds").join(target), harness);
        assert!(seeds > 0, "no seeds for {target}");
        replay(&fuzz.join("regressions").join(target), harness);
    }
}

/// Inputs the harnesses must survive, written down when the guard and the sketches were
/// added (fuzzing found nothing there, these pin the paths down): more series than the
/// guard admits, a timer and a set well past their exact bounds, negative and zero samples.
#[test]
fn guard_and_sketch_paths() {
    let mut many_series = String::new();
    for i in 0..200 {
        many_series.push_str(&format!(
            "s{i}:1|c|#k:{i}\nt:{i}|ms\nh:-{i}|h\nu:{i}|s\ng{i}:+1|g\n"
        ));
    }
    for (_, harness) in TARGETS {
        harness(many_series.as_bytes());
    }
}

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 6] = [
    ("line_parser", rstatsd::fuzzing::line_parser),
    ("json_parser", rstatsd::fuzzing::json_parser),
    (
        "datagram_to_snapshot",
        rstatsd::fuzzing::datagram_to_snapshot,
    ),
    ("config", rstatsd::fuzzing::config),
    ("sketch_decoders", rstatsd::fuzzing::sketch_decoders),
    ("partial_decode", rstatsd::fuzzing::partial_decode),
];

/// Runs `harness` on every file in `dir` (if it exists); returns how many.
fn replay(dir: &Path, harness: Harness) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(outcome.is_ok(), "{} panics", path.display());
        count += 1;
    }
    count
}
