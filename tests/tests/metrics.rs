//! The Prometheus endpoint (`metrics-address` in `global`): scraped over real HTTP
//! while a client writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use rdbd_tests::fixture::{scratch_dir, standalone_config};
use rdbd_tests::node::Node;
use rdbd_tests::tools::free_tcp_port as free_port;
use rdbd_tests::tools::{require, run_ok};

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample '{prefix}' in:\n{text}"))
}

#[test]
fn metrics_follow_state_and_io() {
    require("nbdcopy");
    let dir = scratch_dir();
    let disk = dir.path().join("alice.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let config = standalone_config(dir.path(), &disk, "");
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("global {{ metrics-address 127.0.0.1:{port}; }}\n{text}"),
    )
    .unwrap();
    let node = Node::new(dir.path(), "alice", &config);
    node.adm_ok(&["create-md", "--force", "r0"]);
    node.adm_ok(&["up", "r0"]);

    let m = get(port, "/metrics");
    assert!(m.starts_with("HTTP/1.0 200 OK"), "{m}");
    assert!(
        m.contains("# TYPE rdbd_write_latency_seconds histogram"),
        "{m}"
    );
    assert_eq!(
        sample(&m, "rdbd_resource_role{resource=\"r0\",role=\"Secondary\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "rdbd_disk_state{resource=\"r0\",peer=\"false\",state=\"Inconsistent\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "rdbd_connection_state{resource=\"r0\",state=\"StandAlone\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, "rdbd_written_bytes_total{resource=\"r0\"}"), 0.0);

    node.adm_ok(&["primary", "--force", "r0"]);
    let data = dir.path().join("data.bin");
    std::fs::write(&data, vec![1u8; 8 << 20]).unwrap();
    run_ok(Command::new("nbdcopy").arg(&data).arg(node.nbd_uri("r0")));
    let m = get(port, "/metrics");
    assert_eq!(
        sample(&m, "rdbd_resource_role{resource=\"r0\",role=\"Primary\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "rdbd_written_bytes_total{resource=\"r0\"}"),
        (8u64 << 20) as f64
    );
    assert_eq!(
        sample(&m, "rdbd_out_of_sync_bytes{resource=\"r0\"}"),
        (8u64 << 20) as f64
    );
    assert!(
        sample(&m, "rdbd_al_writes_total{resource=\"r0\"}") >= 2.0,
        "8 MiB spans 2 AL extents"
    );
    let writes = sample(&m, "rdbd_write_requests_total{resource=\"r0\"}");
    assert!(writes >= 1.0);
    assert_eq!(
        sample(
            &m,
            "rdbd_write_latency_seconds_count{resource=\"r0\",protocol=\"none\"}"
        ),
        writes
    );
    assert_eq!(
        sample(
            &m,
            "rdbd_write_latency_seconds_bucket{resource=\"r0\",protocol=\"none\",le=\"+Inf\"}"
        ),
        writes
    );

    assert!(get(port, "/other").starts_with("HTTP/1.0 404"));
}
