//! `drbdsetup events2` lines (DRBD 9's event stream), so that tools built for it can
//! follow rdbd.
//!
//! ```text
//! exists resource name:r0 role:Primary suspended:no
//! exists device name:r0 volume:0 minor:0 disk:UpToDate client:no
//! exists connection name:r0 peer-node-id:1 conn-name:bob connection:Connected role:Secondary
//! exists peer-device name:r0 peer-node-id:1 conn-name:bob volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
//! exists -
//! change peer-device name:r0 peer-node-id:1 conn-name:bob volume:0 replication:SyncSource peer-disk:Inconsistent done:12.50
//! ```
//! Objects: resource, device, connection, peer-device; verbs: exists (the initial
//! dump), create, change, destroy. A change line names the object and only the
//! fields that changed, as drbdsetup does.

use rdbd_types::ConnState;

use super::ResourceStatus;

/// DRBD 9's connection state for an 8.4 connection state.
pub fn connection_state(cstate: ConnState) -> &'static str {
    match cstate {
        ConnState::StandAlone => "StandAlone",
        ConnState::Disconnecting => "Disconnecting",
        ConnState::Unconnected => "Unconnected",
        ConnState::Timeout => "Timeout",
        ConnState::BrokenPipe => "BrokenPipe",
        ConnState::NetworkFailure => "NetworkFailure",
        ConnState::ProtocolError => "ProtocolError",
        ConnState::TearDown => "TearDown",
        ConnState::WFConnection | ConnState::WFReportParams => "Connecting",
        _ => "Connected",
    }
}

/// DRBD 9's replication state for an 8.4 connection state.
pub fn replication_state(cstate: ConnState) -> &'static str {
    if !cstate.is_connected() {
        return "Off";
    }
    match cstate {
        ConnState::Connected => "Established",
        other => other.name(),
    }
}

/// One object's fields, in print order.
type Fields = Vec<(&'static str, String)>;

fn objects(r: &ResourceStatus) -> Vec<(&'static str, Fields, Fields)> {
    // (object, identifying fields, state fields)
    let mut out = vec![
        (
            "resource",
            vec![("name", r.name.clone())],
            vec![
                ("role", r.role.to_string()),
                ("suspended", yes_no(r.suspended)),
            ],
        ),
        (
            "device",
            vec![
                ("name", r.name.clone()),
                ("volume", "0".into()),
                ("minor", r.minor.to_string()),
            ],
            vec![("disk", r.disk.to_string()), ("client", "no".into())],
        ),
    ];
    if let Some(peer) = &r.peer_name {
        let id = || {
            vec![
                ("name", r.name.clone()),
                ("peer-node-id", "1".to_string()),
                ("conn-name", peer.clone()),
            ]
        };
        out.push((
            "connection",
            id(),
            vec![
                ("connection", connection_state(r.cstate).to_string()),
                ("role", r.peer_role.to_string()),
            ],
        ));
        let mut state = vec![
            ("replication", replication_state(r.cstate).to_string()),
            ("peer-disk", r.peer_disk.to_string()),
            (
                "resync-suspended",
                yes_no(r.user_isp || r.peer_isp || r.aftr_isp),
            ),
        ];
        if let Some(sync) = &r.sync {
            let done = 100.0 * sync.total_blocks.saturating_sub(sync.left_blocks) as f64
                / sync.total_blocks.max(1) as f64;
            state.push(("done", format!("{done:.2}")));
        }
        let mut ident = id();
        ident.push(("volume", "0".into()));
        out.push(("peer-device", ident, state));
    }
    out
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn line(verb: &str, object: &str, ident: &Fields, state: &Fields) -> String {
    let mut s = format!("{verb} {object}");
    for (k, v) in ident.iter().chain(state.iter()) {
        s.push(' ');
        s.push_str(k);
        s.push(':');
        s.push_str(v);
    }
    s
}

/// The `exists` lines of one resource (the initial dump; end it with `exists -`).
pub fn exists(r: &ResourceStatus) -> Vec<String> {
    objects(r)
        .iter()
        .map(|(o, id, st)| line("exists", o, id, st))
        .collect()
}

/// The lines that turn `old` into `new` (`None` = not up): create, change, destroy.
pub fn diff(old: Option<&ResourceStatus>, new: Option<&ResourceStatus>) -> Vec<String> {
    match (old, new) {
        (None, None) => Vec::new(),
        (None, Some(n)) => objects(n)
            .iter()
            .map(|(o, id, st)| line("create", o, id, st))
            .collect(),
        (Some(o), None) => objects(o)
            .iter()
            .rev()
            .map(|(ob, id, _)| line("destroy", ob, id, &Vec::new()))
            .collect(),
        (Some(o), Some(n)) => {
            let (before, after) = (objects(o), objects(n));
            let mut lines = Vec::new();
            for (object, id, state) in &after {
                match before.iter().find(|(ob, bid, _)| ob == object && bid == id) {
                    None => lines.push(line("create", object, id, state)),
                    Some((_, _, old_state)) => {
                        let changed: Fields = state
                            .iter()
                            .filter(|kv| !old_state.contains(kv))
                            .cloned()
                            .collect();
                        if !changed.is_empty() {
                            lines.push(line("change", object, id, &changed));
                        }
                    }
                }
            }
            for (object, id, _) in before.iter().rev() {
                if !after.iter().any(|(ob, aid, _)| ob == object && aid == id) {
                    lines.push(line("destroy", object, id, &Vec::new()));
                }
            }
            lines
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_types::{DiskState, Role};

    #[test]
    fn exists_create_change_destroy() {
        let mut r = ResourceStatus::unconfigured("r0", 3);
        r.disk = DiskState::Inconsistent;
        assert_eq!(
            exists(&r),
            vec![
                "exists resource name:r0 role:Secondary suspended:no",
                "exists device name:r0 volume:0 minor:3 disk:Inconsistent client:no"
            ]
        );
        assert_eq!(
            diff(None, Some(&r))[0],
            "create resource name:r0 role:Secondary suspended:no"
        );
        let mut p = r.clone();
        p.role = Role::Primary;
        p.disk = DiskState::UpToDate;
        assert_eq!(
            diff(Some(&r), Some(&p)),
            vec![
                "change resource name:r0 role:Primary",
                "change device name:r0 volume:0 minor:3 disk:UpToDate"
            ]
        );
        assert!(diff(Some(&p), Some(&p)).is_empty());
        assert_eq!(
            diff(Some(&p), None),
            vec![
                "destroy device name:r0 volume:0 minor:3",
                "destroy resource name:r0"
            ]
        );
    }

    #[test]
    fn peer_objects_and_states() {
        let mut r = ResourceStatus::unconfigured("r0", 0);
        r.disk = DiskState::UpToDate;
        r.peer_name = Some("bob".into());
        r.cstate = ConnState::WFConnection;
        let lines = exists(&r);
        assert_eq!(lines[2], "exists connection name:r0 peer-node-id:1 conn-name:bob connection:Connecting role:Unknown");
        assert_eq!(
            lines[3],
            "exists peer-device name:r0 peer-node-id:1 conn-name:bob volume:0 replication:Off peer-disk:DUnknown resync-suspended:no"
        );
        let mut c = r.clone();
        c.cstate = ConnState::SyncSource;
        c.peer_role = Role::Secondary;
        let d = diff(Some(&r), Some(&c));
        assert_eq!(d[0], "change connection name:r0 peer-node-id:1 conn-name:bob connection:Connected role:Secondary");
        assert_eq!(d[1], "change peer-device name:r0 peer-node-id:1 conn-name:bob volume:0 replication:SyncSource");
    }
}
