//! A standalone resource exported over NBD, exercised with real clients: nbdinfo,
//! nbdcopy, qemu-io, fio's nbd engine, and a file system through nbdfuse + loop.

use std::process::Command;

use rdbd_tests::fixture::Standalone;
use rdbd_tests::tools::{require, run, run_ok, sha256_prefix, stdout};

#[test]
fn nbdinfo_reports_size_flags_block_sizes_and_meta_contexts() {
    require("nbdinfo");
    let s = Standalone::up(64);
    let out = run_ok(Command::new("nbdinfo").arg("--json").arg(s.uri()));
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("nbdinfo --json output");
    let export = &info["exports"][0];
    assert_eq!(export["export-name"], "r0");
    let size = export["export-size"].as_u64().expect("size");
    // Internal meta-data takes the end of the 64 MiB file (kernel fact: 130992 sectors left).
    assert_eq!(size, 130992 * 512, "usable size after internal meta-data");
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_multi_conn",
        "can_cache",
    ] {
        assert_eq!(export[flag], true, "{flag} in {export}");
    }
    assert_eq!(export["is_read_only"], false);
    assert_eq!(export["block_size_preferred"], 4096);
    assert!(export["block_size_minimum"].as_u64().unwrap() >= 512);
    let contexts = export["contexts"].as_array().expect("contexts");
    assert!(
        contexts.iter().any(|c| c == "base:allocation"),
        "contexts: {contexts:?}"
    );
    let list = stdout(&run_ok(Command::new("nbdinfo").arg("--list").arg(s.uri())));
    assert!(list.contains("r0"), "nbdinfo --list: {list}");
}

#[test]
fn nbdcopy_random_data_in_and_out() {
    require("nbdcopy");
    let s = Standalone::up(64);
    let data = s.dir.path().join("data.bin");
    let back = s.dir.path().join("back.bin");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 48M /dev/urandom > {}", data.display())),
    );
    run_ok(Command::new("nbdcopy").arg(&data).arg(s.uri()));
    run_ok(Command::new("nbdcopy").arg(s.uri()).arg(&back));
    assert_eq!(
        sha256_prefix(&data, 48 << 20),
        sha256_prefix(&back, 48 << 20)
    );
    // And on the backing file itself, where the data area starts at offset 0.
    assert_eq!(
        sha256_prefix(&data, 48 << 20),
        sha256_prefix(&s.disk, 48 << 20)
    );
}

#[test]
fn qemu_io_writes_and_reads_patterns() {
    require("qemu-io");
    let s = Standalone::up(32);
    let uri = s.uri();
    let out = run_ok(
        Command::new("qemu-io")
            .args(["--image-opts"])
            .arg(format!(
                "driver=nbd,path={},export=r0",
                s.node.run_dir.join("nbd.sock").display()
            ))
            .args([
                "-c",
                "write -P 0xab 0 1M",
                "-c",
                "write -P 0xcd 4096 8k",
                "-c",
                "aio_flush",
            ]),
    );
    assert!(!stdout(&out).contains("error"), "{}", stdout(&out));
    let out = run(Command::new("qemu-io")
        .args(["-f", "raw", "-r"])
        .arg(&uri)
        .args([
            "-c",
            "read -P 0xab 0 4096",
            "-c",
            "read -P 0xcd 4096 8k",
            "-c",
            "read -P 0xab 12288 1036288",
        ]));
    let text = stdout(&out);
    assert!(
        out.status.success() && !text.contains("Pattern verification failed"),
        "{text}"
    );
    // A wrong pattern must be detected, or the check above proves nothing.
    let out = run(Command::new("qemu-io")
        .args(["-f", "raw", "-r"])
        .arg(&uri)
        .args(["-c", "read -P 0x11 0 4096"]));
    assert!(
        stdout(&out).contains("Pattern verification failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn qemu_img_reads_and_converts_the_export() {
    require("qemu-img");
    let s = Standalone::up(32);
    let out = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(s.uri()),
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img info json");
    assert_eq!(
        info["virtual-size"].as_u64(),
        Some(s.node_size_bytes()),
        "{info}"
    );
    // qemu-img convert writes an image into the export and reads it back out.
    let src = s.dir.path().join("src.raw");
    let back = s.dir.path().join("back.raw");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 8M /dev/urandom > {}", src.display())),
    );
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(&src)
            .arg(s.uri()),
    );
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "raw"])
            .arg(s.uri())
            .arg(&back),
    );
    assert_eq!(sha256_prefix(&src, 8 << 20), sha256_prefix(&back, 8 << 20));
}

#[test]
fn fio_nbd_engine_verifies_random_and_sequential_writes() {
    require("fio");
    let s = Standalone::up(64);
    let uri = s.uri();
    for (rw, bs, qd) in [
        ("randwrite", "4k", "1"),
        ("randwrite", "4k", "32"),
        ("write", "64k", "8"),
        ("randwrite", "16k", "16"),
    ] {
        let out = run(Command::new("fio")
            .args([
                "--name=verify",
                "--ioengine=nbd",
                "--size=16M",
                "--verify=crc32c",
                "--do_verify=1",
                "--verify_state_save=0",
            ])
            .arg(format!("--uri={uri}"))
            .arg(format!("--rw={rw}"))
            .arg(format!("--bs={bs}"))
            .arg(format!("--iodepth={qd}"))
            .arg("--output-format=json"));
        assert!(
            out.status.success(),
            "fio {rw} {bs} QD{qd} failed: {}\n{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        // fio may print notes before its JSON document.
        let text = stdout(&out);
        let j: serde_json::Value =
            serde_json::from_str(&text[text.find('{').expect("fio json")..]).expect("fio json");
        let job = &j["jobs"][0];
        assert_eq!(job["error"], 0, "fio {rw} {bs} QD{qd}: {job}");
        assert!(
            job["write"]["io_bytes"].as_u64().unwrap() >= 16 << 20,
            "fio wrote too little: {job}"
        );
        assert!(
            job["read"]["io_bytes"].as_u64().unwrap() >= 16 << 20,
            "fio verified too little: {job}"
        );
    }
}

/// The kernel nbd driver is not available on the development machines.
#[test]
fn kernel_nbd_client_attaches_where_dev_nbd_exists() {
    if !std::path::Path::new("/dev/nbd0").exists() || !rdbd_tests::tools::have("nbd-client") {
        eprintln!("SKIPPED: /dev/nbd0 or nbd-client is absent (this kernel has no nbd driver)");
        return;
    }
    let s = Standalone::up(32);
    let sock = s.node.run_dir.join("nbd.sock");
    run_ok(
        Command::new("nbd-client")
            .arg("-unix")
            .arg(&sock)
            .arg("/dev/nbd0")
            .arg("-N")
            .arg("r0"),
    );
    let out = run(Command::new("sh").arg("-c").arg(
        "echo hello | dd of=/dev/nbd0 bs=4096 conv=sync,fsync status=none && head -c 5 /dev/nbd0",
    ));
    run_ok(Command::new("nbd-client").arg("-d").arg("/dev/nbd0"));
    assert_eq!(stdout(&out), "hello");
}
