//! The control crate's decoders of untrusted text: the control socket's JSON-lines requests
//! (and responses, which the tools decode) and the `/proc/drbd` parser. Arbitrary input never
//! panics; every request survives encode → decode; every status rendered as `/proc/drbd`
//! parses back to the same states, flags and counters.

use proptest::prelude::*;
use rdbd_control::status::parse::parse;
use rdbd_control::status::{proc_drbd, Counters, SyncProgress};
use rdbd_control::{AdminCommand, Request, ResourceStatus, Response};
use rdbd_types::{ConnState, DiskState, Protocol, Role};

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_-]{1,12}", "\\PC{0,20}"]
}

fn admin_command() -> impl Strategy<Value = AdminCommand> {
    prop_oneof![
        Just(AdminCommand::Outdate),
        Just(AdminCommand::Invalidate),
        any::<bool>().prop_map(|clear_bitmap| AdminCommand::NewCurrentUuid { clear_bitmap }),
        (any::<Option<u64>>(), any::<Option<u64>>()).prop_map(|(start_sector, stop_sector)| {
            AdminCommand::Verify {
                start_sector,
                stop_sector,
            }
        }),
        Just(AdminCommand::PauseSync),
        Just(AdminCommand::ResumeSync),
        Just(AdminCommand::ResumeIo),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        Just(Request::Shutdown),
        name().prop_map(|resource| Request::Up { resource }),
        name().prop_map(|resource| Request::Down { resource }),
        (name(), any::<bool>()).prop_map(|(resource, force)| Request::Primary { resource, force }),
        name().prop_map(|resource| Request::Secondary { resource }),
        proptest::option::of(name()).prop_map(|resource| Request::Status { resource }),
        (name(), any::<bool>()).prop_map(|(resource, discard_my_data)| Request::Connect {
            resource,
            discard_my_data
        }),
        name().prop_map(|resource| Request::Disconnect { resource }),
        name().prop_map(|resource| Request::Attach { resource }),
        name().prop_map(|resource| Request::Detach { resource }),
        name().prop_map(|resource| Request::InvalidateRemote { resource }),
        (name(), any::<Option<u64>>(), any::<[bool; 3]>()).prop_map(|(resource, size_bytes, b)| {
            Request::Resize {
                resource,
                size_bytes,
                assume_clean: b[0],
                assume_peer_has_space: b[1],
                force: b[2],
            }
        }),
        (name(), any::<bool>())
            .prop_map(|(resource, dry_run)| Request::Adjust { resource, dry_run }),
        (name(), admin_command())
            .prop_map(|(resource, command)| Request::Admin { resource, command }),
        any::<bool>().prop_map(|now| Request::Events { now }),
    ]
}

/// JSON-looking text built from the protocol's own keys and values.
fn json_soup() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(
        &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"op\"",
            "\"resource\"",
            "\"force\"",
            "\"command\"",
            "\"ping\"",
            "\"up\"",
            "\"primary\"",
            "\"resize\"",
            "\"admin\"",
            "\"verify\"",
            "\"new-current-uuid\"",
            "\"size_bytes\"",
            "\"start_sector\"",
            "\"result\"",
            "\"ok\"",
            "\"status\"",
            "\"resources\"",
            "\"message\"",
            "true",
            "null",
            "0",
            "-1",
            "18446744073709551616",
            "1e400",
            "\"\\ud800\"",
            "\"r0\"",
            "\n",
        ][..],
    );
    proptest::collection::vec(piece, 0..30).prop_map(|p| p.concat())
}

fn status() -> impl Strategy<Value = ResourceStatus> {
    let states = (
        prop::sample::select(Role::ALL),
        prop::sample::select(Role::ALL),
        prop::sample::select(ConnState::ALL),
        prop::sample::select(DiskState::ALL),
        prop::sample::select(DiskState::ALL),
        proptest::option::of(prop::sample::select(Protocol::ALL)),
    );
    let flags = (
        any::<[bool; 4]>(),
        prop::sample::select(&['b', 'f', 'd', 'n'][..]),
    );
    let sync = proptest::option::of((any::<[u64; 6]>(), any::<bool>()).prop_map(|(v, stalled)| {
        SyncProgress {
            total_blocks: v[0] >> 20,
            left_blocks: v[1] >> 20,
            speed_kib_per_s: v[2],
            average_kib_per_s: v[3],
            want_kib_per_s: v[4],
            finish_s: v[5] >> 30,
            stalled,
        }
    }));
    (0u32..300, states, flags, any::<[u64; 12]>(), sync).prop_map(
        |(minor, (role, peer_role, cstate, disk, peer_disk, protocol), (f, wo), c, sync)| {
            let mut r = ResourceStatus::unconfigured("r", minor);
            r.role = role;
            r.peer_role = peer_role;
            r.cstate = cstate;
            r.disk = disk;
            r.peer_disk = peer_disk;
            r.protocol = protocol;
            (r.suspended, r.aftr_isp, r.peer_isp, r.user_isp) = (f[0], f[1], f[2], f[3]);
            r.write_ordering = wo;
            r.counters = Counters {
                ns_kib: c[0],
                nr_kib: c[1],
                dw_kib: c[2],
                dr_kib: c[3],
                al_writes: c[4],
                bm_writes: c[5],
                local_pending: c[6],
                peer_pending: c[7],
                unacked: c[8],
                app_pending: c[9],
                epochs: c[10],
                out_of_sync_kib: c[11],
            };
            r.sync = sync;
            r
        },
    )
}

/// Lines that look like `/proc/drbd`, mixed with damage.
fn proc_soup() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("version: 8.4.11 (api:1/proto:86-101)".to_string()),
        Just(" 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----".to_string()),
        Just(" 1: cs:Unconfigured".to_string()),
        Just("    ns:4 nr:0 dw:4 dr:136 wo:f oos:0".to_string()),
        Just("\t[>....] sync'ed:  9.4% (241620/262100)K".to_string()),
        "[ 0-9a-zA-Z:/\\t-]{0,40}",
        "\\PC{0,30}",
    ];
    proptest::collection::vec(line, 0..8).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip_as_one_json_line(req in request()) {
        let line = serde_json::to_string(&req).unwrap();
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
    }

    #[test]
    fn arbitrary_control_lines_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        soup in json_soup(),
    ) {
        for input in [&bytes[..], soup.as_bytes()] {
            if let Ok(req) = serde_json::from_slice::<Request>(input) {
                let line = serde_json::to_string(&req).unwrap();
                prop_assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
            }
            let _ = serde_json::from_slice::<Response>(input);
        }
    }

    #[test]
    fn arbitrary_proc_drbd_text_never_panics(text in "\\PC{0,300}", soup in proc_soup()) {
        let _ = parse(&text);
        if let Ok((version, minors)) = parse(&soup) {
            prop_assert!(version.starts_with("version: "));
            for m in minors {
                let _ = (m.conn_state(), m.counter("oos"));
            }
        }
    }

    #[test]
    fn rendered_status_parses_back(statuses in proptest::collection::vec(status(), 1..4)) {
        let mut statuses = statuses;
        statuses.sort_by_key(|r| r.minor);
        statuses.dedup_by_key(|r| r.minor);
        let text = proc_drbd::render(&statuses);
        let (version, minors) = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(version, proc_drbd::VERSION_LINE);
        prop_assert_eq!(minors.len(), statuses.len());
        for (r, m) in statuses.iter().zip(&minors) {
            prop_assert_eq!(m.minor, r.minor);
            if r.is_unconfigured() {
                prop_assert_eq!(&m.cstate, "Unconfigured");
                continue;
            }
            prop_assert_eq!(m.conn_state(), Some(r.cstate));
            prop_assert_eq!(m.roles, Some((r.role, r.peer_role)));
            prop_assert_eq!(m.disks, Some((r.disk, r.peer_disk)));
            let c = &r.counters;
            for (key, value) in [("ns", c.ns_kib), ("dw", c.dw_kib), ("oos", c.out_of_sync_kib), ("ep", c.epochs)] {
                prop_assert_eq!(m.counter(key), Some(value), "{}", key);
            }
            let wo = r.write_ordering.to_string();
            prop_assert_eq!(m.counters.iter().find(|(k, _)| k == "wo").map(|(_, v)| v), Some(&wo));
            prop_assert_eq!(m.flags.starts_with('s'), r.suspended);
            prop_assert_eq!(m.flags.len(), 6);
            let protocol = match r.protocol {
                Some(p) if r.cstate != ConnState::StandAlone => p.name().chars().next().unwrap(),
                _ => ' ',
            };
            prop_assert_eq!(m.protocol, protocol);
        }
    }
}
