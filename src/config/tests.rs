use super::*;

#[test]
fn the_old_fleet_section_is_read_with_a_deprecation_and_not_beside_the_new_one() {
    let c = Config::parse("[aggregate]\nfrom = [\"k:9092\"]\ngrace_ms = 500\n").unwrap();
    assert_eq!(c.fleet.from, vec!["k:9092"]);
    assert_eq!(c.fleet.grace_ms, 500);
    assert_eq!(c.deprecations, vec!["[aggregate] (now [fleet])"]);
    assert_eq!(
        Config::parse("[fleet]\ngrace_ms = 5\n")
            .unwrap()
            .deprecations
            .len(),
        0
    );
    let e = Config::parse("[fleet]\ngrace_ms = 5\n[aggregate]\ngrace_ms = 6\n").unwrap_err();
    assert_eq!(e.key, "aggregate");
    let e = Config::parse("[aggregate]\nbogus = 1\n").unwrap_err();
    assert_eq!(e.key, "aggregate.bogus");
}

#[test]
fn fleet_session_timeout_and_heartbeat_follow_the_flush_interval() {
    let f = FleetConfig::default();
    assert_eq!(f.session_timeout_ms(2_000), 6_000);
    assert_eq!(f.heartbeat_ms(2_000), 2_000);
    assert_eq!(f.session_timeout_ms(10_000), 30_000);
    assert_eq!(f.heartbeat_ms(10_000), 10_000);
    assert_eq!(f.session_timeout_ms(500), 6_000, "the broker's minimum");
    assert_eq!(
        f.session_timeout_ms(600_000),
        300_000,
        "max.poll.interval.ms"
    );
    let set = FleetConfig {
        session_timeout_ms: 9_000,
        heartbeat_ms: 1_000,
        ..FleetConfig::default()
    };
    assert_eq!(
        (set.session_timeout_ms(2_000), set.heartbeat_ms(2_000)),
        (9_000, 1_000)
    );
}

#[test]
fn a_heartbeat_at_or_above_the_session_timeout_is_refused() {
    let c = Config::parse(
        "[flush]\ninterval_ms = 2000\n[fleet]\nfrom = [\"k:1\"]\nheartbeat_ms = 6000\n",
    )
    .unwrap();
    assert_eq!(c.validate().unwrap_err().key, "fleet.heartbeat_ms");
    let c = Config::parse(
        "[flush]\ninterval_ms = 2000\n[fleet]\nfrom = [\"k:1\"]\nheartbeat_ms = 5999\n",
    )
    .unwrap();
    c.validate().unwrap();
}

#[test]
fn the_admin_planes_bounds_are_checked() {
    for (text, key) in [
        ("[http]\nmax_connections = 0\n", "http.max_connections"),
        ("[http]\nread_timeout_ms = 0\n", "http.read_timeout_ms"),
        (
            "[http]\nwrite_timeout_ms = 3600001\n",
            "http.write_timeout_ms",
        ),
        ("[admin]\nmax_connections = 0\n", "admin.max_connections"),
        ("[admin]\nidle_timeout_ms = 0\n", "admin.idle_timeout_ms"),
    ] {
        let e = Config::parse(text).unwrap().validate().unwrap_err();
        assert_eq!(e.key, key, "{text}");
    }
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    Config::default().validate().unwrap();
}

#[test]
fn full_example_parses() {
    let c = Config::parse(
        r#"
        [statsd]
        listen = ["127.0.0.1:8125", "[::1]:8125"]
        receivers = 2
        [pystatsd]
        enabled = false
        [flush]
        interval_ms = 1000
        [aggregation]
        percentiles = [90, 99.9, -10]
        [tags]
        host = "web1"
        [sinks.out]
        type = "console"
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.statsd.listen.len(), 2);
    assert_eq!(c.aggregation.percentiles, vec![90.0, 99.9, -10.0]);
    assert_eq!(c.sinks["out"], SinkConfig::Console(Box::default()));
    assert_eq!(c.tags["host"], "web1");
}

#[test]
fn errors_name_the_key() {
    let e = Config::parse("[flush]\nintervl_ms = 5\n").unwrap_err();
    assert_eq!(e.key, "flush.intervl_ms");
    assert!(e.reason.contains("intervl_ms"), "{e}");
    let e = Config::parse("[flush]\ninterval_ms = \"x\"\n").unwrap_err();
    assert_eq!(e.key, "flush.interval_ms");
    assert!(e.reason.contains("line 2"), "{e}");
    let e = Config::parse("[sinks.x]\ntype = \"nope\"\n").unwrap_err();
    assert_eq!(e.key, "sinks.x.type");
    assert!(e.reason.starts_with("unknown sink type \"nope\""), "{e}");
    let e = Config::parse("[sinks.x]\ntype = \"kafka\"\nformat = \"xml\"\n").unwrap_err();
    assert_eq!(e.key, "sinks.x.format");
    let e =
        Config::parse("[sinks.x]\ntype = \"kafka\"\n[sinks.x.properties]\na = 1\n").unwrap_err();
    assert_eq!(e.key, "sinks.x.properties.a");
    let e = Config::parse("[sinks.x]\nbrokers = []\n").unwrap_err();
    assert_eq!(e.key, "sinks.x");
    assert!(e.reason.starts_with("missing `type`"), "{e}");
    let e = Config::parse("[sinks.x]\ntype = \"console\"\nbogus = 1\n").unwrap_err();
    assert!(e.reason.contains("bogus"), "{e}");
    let e = Config::parse("[statsd]\nlisten = [\"nowhere\"]\n").unwrap_err();
    assert_eq!(e.key, "statsd.listen[0]");
}

#[test]
fn validation_names_the_key() {
    let mut c = Config::default();
    c.aggregation.percentiles = vec![90.0, 0.0];
    let e = c
        .validate()
        .unwrap_err()
        .in_file(Some("/etc/x.toml".into()));
    assert_eq!(e.key, "aggregation.percentiles[1]");
    assert_eq!(
        e.to_string(),
        "config file /etc/x.toml: key `aggregation.percentiles[1]`: percentile 0 is not a number in [-100, 0) or (0, 100]"
    );
    let mut c = Config::default();
    c.flush.interval_ms = 1;
    assert_eq!(c.validate().unwrap_err().key, "flush.interval_ms");
    let mut c = Config::default();
    c.log.level = "loud".into();
    assert_eq!(c.validate().unwrap_err().key, "log.level");
}
