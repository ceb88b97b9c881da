//! Smoke test against a real kernel DRBD 8.4.11 peer in qemu (tests/kernel-peer): the kernel
//! connects to us, and with rdbd-wire we take its data and meta sockets, agree on protocol 101,
//! pass its cram-hmac (sha1) authentication, exchange the connection parameters, and watch it
//! reach `Connected`. Every frame the kernel sends is decoded with rdbd-wire and asserted on; the
//! raw bytes are written to target/kernel-peer/last-capture.txt for golden vectors.
//!
//! Run alone: `cargo test -p rdbd-tests --test kernel_peer_smoke -- --nocapture`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdbd_tests::kernel_peer::vm::{free_port, repo_root, KernelPeerVm, VmConfig};
use rdbd_types::{ConnState, DiskState, Protocol, Role};
use rdbd_wire::auth::{auth_response, verify_response, CramHmacAlg, CHALLENGE_BYTES};
use rdbd_wire::*;

const SECRET: &str = "rdbd-smoke-secret";

/// Raw frames received, for the capture file.
type Capture = Arc<Mutex<Vec<String>>>;

/// Reads one frame from a blocking socket, failing with the console on timeout or error.
fn read_frame(
    vm: &mut KernelPeerVm,
    sock: &mut TcpStream,
    dec: &mut Decoder,
    what: &str,
    capture: &Capture,
) -> Frame {
    let deadline = Instant::now() + Duration::from_secs(60);
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set_read_timeout");
    let mut buf = [0u8; 65536];
    loop {
        match dec.next_frame() {
            Ok(Some(frame)) => {
                let mut raw = Vec::new();
                frame.encode(&mut raw).expect("re-encode");
                capture.lock().unwrap().push(format!(
                    "{what}: {} {}",
                    frame.packet.command(),
                    hex(&raw)
                ));
                return frame;
            }
            Ok(None) => {}
            Err(e) => vm.fail(&format!(
                "{what}: the kernel sent bytes rdbd-wire rejects: {e}"
            )),
        }
        match sock.read(&mut buf) {
            Ok(0) => vm.fail(&format!("{what}: the kernel closed the socket")),
            Ok(n) => dec.feed(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() > deadline {
                    vm.fail(&format!("{what}: nothing from the kernel for 60 s"));
                }
            }
            Err(e) => vm.fail(&format!("{what}: read error {e}")),
        }
    }
}

fn send(sock: &mut TcpStream, kind: HeaderKind, packet: Packet) {
    let bytes = Frame::new(kind, packet).to_bytes().expect("encode");
    sock.write_all(&bytes).expect("send to the kernel");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts the kernel's connection on `listener`, failing with the console when the VM dies.
fn accept(vm: &mut KernelPeerVm, listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).expect("blocking socket");
                return sock;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !vm.running() {
                    vm.fail("the VM exited before the kernel connected");
                }
                if Instant::now() > deadline {
                    vm.fail(&format!("the kernel did not connect within {timeout:?}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => vm.fail(&format!("accept failed: {e}")),
        }
    }
}

#[test]
fn kernel_peer_connects_authenticates_and_reaches_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the peer listener");
    let peer_port = listener.local_addr().unwrap().port();
    let fwd_port = free_port();
    let script = r#"
kp_drbd_up r0 0 /dev/vda 10.0.2.15:7789 "$PEER" --protocol=C --cram-hmac-alg=sha1 --shared-secret="$SECRET" || exit 1
kp_proc_drbd
KP_QUIET=1 kp_wait_stop 180 1
kp_proc_drbd
"#;
    let mut vm = KernelPeerVm::boot(VmConfig {
        script: script.to_string(),
        disk_mib: 64,
        fwd_port,
        env: vec![
            ("PEER".into(), format!("10.0.2.2:{peer_port}")),
            ("SECRET".into(), SECRET.into()),
        ],
        timeout: Duration::from_secs(300),
    });
    vm.wait_console("KP-BOOTED", Duration::from_secs(120));
    let capture: Capture = Arc::default();

    // 1. The kernel connects to us first: its data socket, announced with an h80 P_INITIAL_DATA.
    let mut data = accept(&mut vm, &listener, Duration::from_secs(120));
    let mut data_dec = Decoder::new();
    let first = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    assert_eq!(
        first,
        Frame::new(HeaderKind::H80, Packet::InitialData),
        "kernel's first packet"
    );

    // 2. We connect to the kernel for the meta socket (forwarded to the guest's 7789).
    let mut meta =
        TcpStream::connect(("127.0.0.1", fwd_port)).expect("connect to the kernel's port");
    send(&mut meta, HeaderKind::H80, Packet::InitialMeta);

    // 3. Feature negotiation on the data socket, h80 both ways.
    let features = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Frame {
        kind: HeaderKind::H80,
        packet: Packet::ConnectionFeatures(kernel_features),
        ..
    } = features
    else {
        vm.fail(&format!(
            "expected an h80 P_CONNECTION_FEATURES, got {features:?}"
        ));
    };
    assert_eq!(kernel_features.protocol_min, 86, "kernel's protocol_min");
    assert_eq!(kernel_features.protocol_max, 101, "kernel's protocol_max");
    let ours = ConnectionFeatures {
        protocol_min: PROTOCOL_VERSION,
        feature_flags: 0,
        protocol_max: PROTOCOL_VERSION,
    };
    assert_eq!(ours.agree(&kernel_features), Some(101));
    send(&mut data, HeaderKind::H80, Packet::ConnectionFeatures(ours));

    // 4. cram-hmac: the kernel challenges first (h100 from now on); we challenge back and answer.
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Frame {
        kind: HeaderKind::H100,
        packet: Packet::AuthChallenge(kernel_challenge),
        ..
    } = frame
    else {
        vm.fail(&format!("expected an h100 P_AUTH_CHALLENGE, got {frame:?}"));
    };
    assert_eq!(kernel_challenge.len(), CHALLENGE_BYTES);
    let our_challenge: Vec<u8> = (0..CHALLENGE_BYTES).map(|_| rand::random::<u8>()).collect();
    send(
        &mut data,
        HeaderKind::H100,
        Packet::AuthChallenge(our_challenge.clone()),
    );
    let response = auth_response(CramHmacAlg::Sha1, SECRET.as_bytes(), &kernel_challenge);
    send(&mut data, HeaderKind::H100, Packet::AuthResponse(response));
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::AuthResponse(kernel_response) = frame.packet else {
        vm.fail(&format!("expected P_AUTH_RESPONSE, got {frame:?}"));
    };
    assert!(
        verify_response(
            CramHmacAlg::Sha1,
            SECRET.as_bytes(),
            &our_challenge,
            &kernel_response
        ),
        "the kernel's HMAC of our challenge does not verify"
    );

    // 5. The kernel's parameters: P_PROTOCOL, then for volume 0 SYNC_PARAM89, SIZES, UUIDS, STATE.
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::Protocol(kernel_protocol) = frame.packet else {
        vm.fail(&format!("expected P_PROTOCOL, got {frame:?}"))
    };
    assert_eq!(kernel_protocol.protocol, Protocol::C);
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::SyncParam89(kernel_sync) = frame.packet else {
        vm.fail(&format!("expected P_SYNC_PARAM89, got {frame:?}"))
    };
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::Sizes(kernel_sizes) = frame.packet else {
        vm.fail(&format!("expected P_SIZES, got {frame:?}"))
    };
    // 64 MiB with internal meta-data: 130992 sectors of data.
    assert_eq!(kernel_sizes.backing_sectors, 130_992);
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::Uuids(kernel_uuids) = frame.packet else {
        vm.fail(&format!("expected P_UUIDS, got {frame:?}"))
    };
    assert_eq!(
        kernel_uuids.current, 4,
        "fresh meta-data has the JUST_CREATED current UUID"
    );
    assert_eq!(kernel_uuids.dirty_bits, 16_374);
    let frame = read_frame(&mut vm, &mut data, &mut data_dec, "data", &capture);
    let Packet::State(kernel_state) = frame.packet else {
        vm.fail(&format!("expected P_STATE, got {frame:?}"))
    };
    assert_eq!(
        (kernel_state.role, kernel_state.disk),
        (Role::Secondary, DiskState::Inconsistent)
    );

    // 6. Ours: the same settings, a same-sized Inconsistent disk with a JUST_CREATED UUID, so the
    //    sync handshake finds nothing to sync (rule 10) and the kernel goes to Connected.
    send(
        &mut data,
        HeaderKind::H100,
        Packet::Protocol(kernel_protocol.clone()),
    );
    send(
        &mut data,
        HeaderKind::H100,
        Packet::SyncParam89(kernel_sync),
    );
    send(
        &mut data,
        HeaderKind::H100,
        Packet::Sizes(Sizes {
            current_sectors: 0,
            ..kernel_sizes
        }),
    );
    send(&mut data, HeaderKind::H100, Packet::Uuids(kernel_uuids));
    let our_state = DrbdState {
        conn: ConnState::WFReportParams,
        ..kernel_state
    };
    send(&mut data, HeaderKind::H100, Packet::State(our_state));

    // 7. Answer pings on the meta socket and log the rest of both streams until Connected.
    let stop = Arc::new(AtomicBool::new(false));
    let pings = Arc::new(AtomicU32::new(0));
    let mut threads = Vec::new();
    for (name, mut sock, mut dec) in [("meta", meta, Decoder::new()), ("data", data, data_dec)] {
        let (stop, capture, pings) = (stop.clone(), capture.clone(), pings.clone());
        threads.push(std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                while let Ok(Some(frame)) = dec.next_frame() {
                    let raw = frame.to_bytes().unwrap();
                    capture.lock().unwrap().push(format!(
                        "{name}: {} {}",
                        frame.packet.command(),
                        hex(&raw)
                    ));
                    if frame.packet == Packet::Ping {
                        pings.fetch_add(1, Ordering::Relaxed);
                        let _ = sock.write_all(
                            &Frame::new(HeaderKind::H100, Packet::PingAck)
                                .to_bytes()
                                .unwrap(),
                        );
                    }
                }
                match sock.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => dec.feed(&buf[..n]),
                    Err(_) => {}
                }
            }
        }));
    }
    vm.wait_console(
        "conn( WFReportParams -> Connected )",
        Duration::from_secs(60),
    );
    // Stay connected across a ping (ping-int 10 s): the kernel must accept our P_PING_ACK.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pings.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            vm.fail("the kernel never pinged on the meta socket within 60 s of Connected");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let console = vm.console();
    let capture_text = capture.lock().unwrap().join("\n");
    let _ = std::fs::create_dir_all(repo_root().join("target/kernel-peer"));
    let _ = std::fs::write(
        repo_root().join("target/kernel-peer/last-capture.txt"),
        &capture_text,
    );
    eprintln!("frames from the kernel:\n{capture_text}");
    if console.contains("PingAck did not arrive") || console.contains("conn( Connected ->") {
        vm.fail("the kernel dropped the connection after Connected");
    }
    vm.send_ctl("stop");
    vm.wait_exit(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    let console = vm.console();
    let _ = std::fs::write(
        repo_root().join("target/kernel-peer/last-console.log"),
        &console,
    );
    for line in [
        "Handshake successful: Agreed network protocol version 101",
        "Peer authenticated using 20 bytes HMAC",
        "conn( WFReportParams -> Connected )",
        " 0: cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent C r-----",
    ] {
        if !console.contains(line) {
            vm.fail(&format!("the console lacks {line:?}"));
        }
    }
    assert_eq!(vm.script_exit(), Some(0), "guest script exit status");
}
