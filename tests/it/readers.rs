//! What rstatsd writes for other programs, read by those programs: a timer's DDSketch by
//! DataDog's Python `ddsketch` (its protobuf reader), a set's HyperLogLog by Apache
//! DataSketches' Python `datasketches`, the partials of fleet-wide aggregation by Python
//! code protoc generates from `src/aggregate/partial.proto` (`grpcio-tools`).
//! `tools/test.sh` installs them all from PyPI.

use std::process::Command;

use rstatsd::aggregate::hll::Hll;
use rstatsd::aggregate::partial::{self, IntervalEnd, Origin};
use rstatsd::aggregate::sketch::{Mapping, Sketch};
use rstatsd::aggregate::{Bounds, SetValue, Value, sketch_proto};
use rstatsd::metric::{MetricType, Sample, SeriesKey};

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
    use rstatsd::sink::batch::Batch;
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

/// Decodes each `<name>.bin` of argv[1] (names comma separated in argv[2]) with the classes
/// protoc generated there from partial.proto; the sketch and the HLL with their own readers.
const PARTIALS_PYTHON: &str = r#"
import json, sys
d = sys.argv[1]
sys.path.insert(0, d)
import partial_pb2 as pb
import ddsketch.pb.ddsketch_pb2 as ddpb
from ddsketch.pb.proto import DDSketchProto
from datasketches import hll_sketch

def origin(o):
    return [o.source_id, o.source_epoch_ms, o.interval_start_ms, o.interval_ms]

out = {}
for name in sys.argv[2].split(","):
    e = pb.Envelope()
    e.ParseFromString(open("%s/%s.bin" % (d, name), "rb").read())
    r = {"version": e.version, "kind": e.WhichOneof("kind")}
    if r["kind"] == "end":
        r.update(origin=origin(e.end.origin), partials=e.end.partials,
                 partitions=e.end.partitions, last=e.end.last)
    else:
        p = e.partial
        r.update(origin=origin(p.origin), seq=p.seq if p.HasField("seq") else None,
                 name=p.name, type=pb.MetricType.Name(p.type),
                 tags=[[t.key, t.value] for t in p.tags], value=p.WhichOneof("value"))
        if r["value"] == "sum":
            r["sum"] = p.sum
        elif r["value"] == "gauge":
            r["gauge"] = [p.gauge.value, p.gauge.absolute, p.gauge.set_unix_ns]
        elif r["value"] == "samples":
            s = p.samples
            r.update(count=s.count, values=list(s.values))
            if s.ddsketch:
                m = ddpb.DDSketch()
                m.ParseFromString(s.ddsketch)
                sketch = DDSketchProto.from_proto(m)
                t = s.totals
                r.update(sketch_count=sketch.count, p99=sketch.get_quantile_value(0.99),
                         totals=[t.seen, t.sum, t.sum_squares, t.min, t.max])
        else:
            r["members"] = sorted(p.set.members)
            if p.set.hll:
                h = hll_sketch.deserialize(p.set.hll)
                r.update(lg_k=h.lg_config_k, estimate=h.get_estimate())
    out[name] = r
print(json.dumps(out))
"#;

#[test]
fn python_decodes_partials() {
    let dir = crate::common::TempDir::new("partials");
    let origin = Origin {
        source_id: "web-042".into(),
        source_epoch_ms: 1_795_000_000_123,
        interval_start_ms: 1_795_323_600_000,
        interval_ms: 10_000,
    };
    // A timer beyond 4 raw samples is a sketch, a set beyond 4 members an HLL.
    let bounds = Bounds {
        max_timer_samples: 4,
        set_exact_members: 4,
        ..Bounds::default()
    };
    let fill = |mtype, samples: &[Sample<'_>], rate| {
        let mut v = Value::empty(mtype);
        for s in samples {
            v.update(s, rate, 0, &bounds);
        }
        v
    };
    let numbers = |n: u32| {
        (1..=n)
            .map(|i| Sample::Value(f64::from(i)))
            .collect::<Vec<_>>()
    };
    let members = |n: u32| {
        (0..n)
            .map(|i| Sample::Member(format!("user-{i}").into()))
            .collect::<Vec<_>>()
    };
    let tags = [("env", "prod"), ("host", "web-042")];
    let raw = [Sample::Value(1.5), Sample::Value(2.5), Sample::Value(10.0)];
    let sketched = fill(MetricType::Timer, &numbers(1001), 1.0);
    let hll = fill(MetricType::Set, &members(1000), 1.0);
    let cases = [
        (
            "counter",
            Some(0),
            MetricType::Counter,
            Value::Counter(12.5),
            0,
        ),
        (
            "gauge",
            Some(1),
            MetricType::Gauge,
            fill(MetricType::Gauge, &[Sample::Value(42.5)], 1.0),
            1_795_323_605_000_000_007,
        ),
        (
            "timer_raw",
            None,
            MetricType::Timer,
            fill(MetricType::Timer, &raw, 0.5),
            0,
        ),
        (
            "timer_sketched",
            Some(2),
            MetricType::Timer,
            sketched.clone(),
            0,
        ),
        (
            "set_exact",
            Some(3),
            MetricType::Set,
            fill(MetricType::Set, &members(3), 1.0),
            0,
        ),
        ("set_hll", Some(4), MetricType::Set, hll.clone(), 0),
    ];
    for (name, seq, mtype, value, ns) in &cases {
        let key = SeriesKey::new(format!("api.{name}"), *mtype, tags);
        let mut bytes = Vec::new();
        partial::encode_partial(&mut bytes, &origin, *seq, &key, value, *ns);
        std::fs::write(format!("{}/{name}.bin", dir.path()), bytes).unwrap();
    }
    let mut end = Vec::new();
    let interval_end = IntervalEnd {
        origin: origin.clone(),
        partials: 5,
        partitions: 3,
        last: true,
    };
    partial::encode_end(&mut end, &interval_end);
    std::fs::write(format!("{}/end.bin", dir.path()), end).unwrap();

    let protoc = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I", "src/aggregate"])
        .arg(format!("--python_out={}", dir.path()))
        .arg("partial.proto")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3");
    assert!(
        protoc.status.success(),
        "protoc failed on partial.proto (tools/test.sh installs grpcio-tools): {}",
        String::from_utf8_lossy(&protoc.stderr)
    );
    let names: Vec<&str> = cases.iter().map(|c| c.0).chain(["end"]).collect();
    let out = Command::new("python3")
        .args(["-c", PARTIALS_PYTHON, dir.path(), &names.join(",")])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python partials reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let origin_json = serde_json::json!([
        "web-042",
        1_795_000_000_123u64,
        1_795_323_600_000u64,
        10_000
    ]);
    let tags_json = serde_json::json!([["env", "prod"], ["host", "web-042"]]);
    for (name, seq, mtype, _, _) in &cases {
        let p = &got[name];
        assert_eq!(p["version"], 1, "{name}");
        assert_eq!(p["kind"], "partial", "{name}");
        assert_eq!(p["origin"], origin_json, "{name}");
        assert_eq!(p["seq"], serde_json::json!(seq), "{name}");
        assert_eq!(p["name"], format!("api.{name}"));
        assert_eq!(p["type"], mtype.as_str().to_uppercase(), "{name}");
        assert_eq!(p["tags"], tags_json, "{name}");
    }
    assert_eq!(got["counter"]["value"], "sum");
    assert_eq!(got["counter"]["sum"], 12.5);
    assert_eq!(
        got["gauge"]["gauge"],
        serde_json::json!([42.5, true, 1_795_323_605_000_000_007u64])
    );
    let t = &got["timer_raw"];
    assert_eq!((&t["value"], &t["count"]), (&"samples".into(), &6.0.into()));
    assert_eq!(t["values"], serde_json::json!([1.5, 2.5, 10.0]));
    assert!(t.get("sketch_count").is_none());

    let t = &got["timer_sketched"];
    assert_eq!(t["values"], serde_json::json!([]));
    assert_eq!(t["count"], 1001.0);
    assert_eq!(t["sketch_count"], 1001.0);
    let Value::Timer(s) = &sketched else {
        unreachable!()
    };
    let sk = s.sketched.as_ref().unwrap();
    let tot = sk.totals;
    assert_eq!(
        t["totals"],
        serde_json::json!([tot.seen, tot.sum, tot.sum_squares, tot.min, tot.max])
    );
    assert_eq!(tot.seen, 1001);
    // Python's rank is q·(count−1) = 990: the same bin as ours.
    let ours = sk.sketch.value_at(990);
    let python = t["p99"].as_f64().unwrap();
    let alpha = sk.sketch.mapping().relative_accuracy();
    assert!(
        (python - ours).abs() <= alpha * ours,
        "p99: python {python}, rstatsd {ours}"
    );
    assert!((ours - 991.0).abs() <= alpha * 991.0, "p99 {ours}");

    assert_eq!(got["set_exact"]["value"], "set");
    assert_eq!(
        got["set_exact"]["members"],
        serde_json::json!(["user-0", "user-1", "user-2"])
    );
    let h = &got["set_hll"];
    assert_eq!(
        (&h["members"], &h["lg_k"]),
        (&serde_json::json!([]), &14.into())
    );
    let Value::Set(set) = &hll else {
        unreachable!()
    };
    let SetValue::Estimated(ours) = &**set else {
        panic!("an HLL")
    };
    let (python, ours) = (h["estimate"].as_f64().unwrap(), ours.estimate());
    // Different estimators of the same registers (DataSketches' composite, Ertl's): equal
    // to well within the sketch's standard error (0.81 %) of each other.
    assert!(
        (python - ours).abs() <= 0.001 * ours,
        "HLL estimate: datasketches {python}, rstatsd {ours}"
    );

    let e = &got["end"];
    assert_eq!(e["kind"], "end");
    assert_eq!(e["origin"], origin_json);
    assert_eq!(
        (&e["partials"], &e["partitions"], &e["last"]),
        (&5.into(), &3.into(), &true.into())
    );
}

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
