//! What rstatsd writes for other programs, read by those programs: a timer's DDSketch by
//! DataDog's Python `ddsketch` (its protobuf reader), a set's HyperLogLog by Apache
//! DataSketches' Python `datasketches`. `tools/test.sh` installs both from PyPI.

use std::process::Command;

use rstatsd::aggregate::hll::Hll;
use rstatsd::aggregate::sketch::{Mapping, Sketch};
use rstatsd::aggregate::sketch_proto;

const PYTHON: &str = r#"
import json, sys
from ddsketch.pb.proto import DDSketchProto
import ddsketch.pb.ddsketch_pb2 as pb
from datasketches import hll_sketch, hll_union, tgt_hll_type

d = sys.argv[1]
m = pb.DDSketch()
m.ParseFromString(open(d + "/timer.ddsketch", "rb").read())
sketch = DDSketchProto.from_proto(m)
qs = [float(q) for q in sys.argv[2].split(",")]
ours = hll_sketch.deserialize(open(d + "/set.hll", "rb").read())
theirs = hll_sketch(14, tgt_hll_type.HLL_8)
for i in range(int(sys.argv[3])):
    theirs.update("user-%d" % i)
print(json.dumps({
    "count": sketch.count,
    "quantiles": [sketch.get_quantile_value(q) for q in qs],
    "lg_k": ours.lg_config_k,
    "estimate": ours.get_estimate(),
    "their_registers": list(theirs.serialize_updatable()[40:]),
}))
"#;

#[test]
fn python_readers_decode_what_rstatsd_writes() {
    // 100,001 samples, so that Python's rank q·(count−1) is a whole number for these q.
    let mut sketch = Sketch::new(Mapping::with_scale(6), 2048);
    let mut x = 1u64;
    for i in 0..100_001u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let v = match i % 20 {
            0 => -(u * 500.0),
            1 => 0.0,
            _ => (u * 8.0).exp(),
        };
        sketch.add(v);
    }
    let quantiles = [0.0, 0.01, 0.05, 0.5, 0.9, 0.99, 0.999, 1.0];
    let members = 100_000u64;
    let mut hll = Hll::new(14);
    for i in 0..members {
        hll.add(format!("user-{i}").as_bytes());
    }
    let dir = std::env::temp_dir().join(format!("rstatsd-readers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("timer.ddsketch"), sketch_proto::encode(&sketch)).unwrap();
    std::fs::write(dir.join("set.hll"), hll.to_datasketches()).unwrap();
    let qs: Vec<String> = quantiles.iter().map(f64::to_string).collect();
    let out = Command::new("python3")
        .args(["-c", PYTHON, dir.to_str().unwrap(), &qs.join(",")])
        .arg(members.to_string())
        .output()
        .expect("python3");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "the Python readers failed (tools/test.sh installs ddsketch[serialization] and \
         datasketches): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(got["count"], 100_001.0);
    for (q, python) in quantiles.iter().zip(got["quantiles"].as_array().unwrap()) {
        let rank = (q * 100_000.0) as u64;
        let ours = sketch.value_at(rank);
        let python = python.as_f64().unwrap();
        // The same bin, the same formula: equal to the last few bits.
        assert!(
            (python - ours).abs() <= 1e-12 * ours.abs(),
            "q {q}: python {python}, rstatsd {ours}"
        );
    }

    assert_eq!(got["lg_k"], 14);
    let python = got["estimate"].as_f64().unwrap();
    let se = 1.04 / 128.0;
    for (who, estimate) in [("datasketches", python), ("rstatsd", hll.estimate())] {
        let err = (estimate - members as f64).abs() / members as f64;
        assert!(err <= 3.0 * se, "{who}: {estimate}");
    }
    // DataSketches hashing the same members fills exactly the same registers.
    let theirs: Vec<u8> = got["their_registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(theirs, hll.to_datasketches()[40..]);
}

#[test]
fn the_python_spool_reader_reads_what_rstatsd_spools() {
    use std::sync::Arc;

    use rstatsd::sink::SinkCounters;
    use rstatsd::sink::buffer::Batch;
    use rstatsd::sink::spool::{Spool, SpoolSettings, State};

    let dir = std::env::temp_dir().join(format!("rstatsd-readers-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = SpoolSettings {
        dir: dir.clone(),
        max_bytes: 1 << 30,
        segment_bytes: 16 << 20,
    };
    let mut spool = Spool::open("kafka", settings, Arc::new(SinkCounters::default()));
    let mut kafka = Batch::default();
    kafka.push(
        Some(Arc::from("metrics")),
        Some(b"api.hits"),
        b"{\"value\":3}",
    );
    kafka.push(Some(Arc::from("metrics.timer")), None, b"\xff\x00binary");
    kafka.set_partition(3);
    kafka.set_flushed_ms(1_795_323_600_000);
    let mut graphite = Batch::default();
    graphite.push(None, None, b"stats_counts.api.hits 3 1795323610\n");
    graphite.set_flushed_ms(1_795_323_610_000);
    spool.append(&kafka, |_| true, State::Unread).unwrap();
    spool.append(&graphite, |_| true, State::Unread).unwrap();
    drop(spool);
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/spool_dump.py"))
        .arg(&segment)
        .output()
        .expect("python3");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "tools/spool_dump.py failed (tools/test.sh installs crc32c): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let strip = |mut r: serde_json::Value| {
        r.as_object_mut().unwrap().remove("segment");
        r
    };
    let got: Vec<serde_json::Value> = records.into_iter().map(strip).collect();
    assert_eq!(
        got,
        [
            serde_json::json!({"offset": 12, "flushed_ms": 1_795_323_600_000u64, "messages": [
                {"topic": "metrics", "partition": null, "key": "api.hits",
                 "payload": "{\"value\":3}"},
                {"topic": "metrics.timer", "partition": 3, "key": null,
                 "payload_b64": "/wBiaW5hcnk="},
            ]}),
            serde_json::json!({"offset": got[1]["offset"], "flushed_ms": 1_795_323_610_000u64,
                "messages": [
                {"topic": null, "partition": null, "key": null,
                 "payload": "stats_counts.api.hits 3 1795323610\n"},
            ]}),
        ]
    );
    assert!(got[1]["offset"].as_u64().unwrap() > 12);
}
