//! The status of a resource as the daemon reports it, and its three text forms.
//!
//! - [`proc_drbd`]: DRBD 8.4's `/proc/drbd`, written by the daemon to `<run-dir>/drbd`.
//! - [`drbdadm`]: DRBD 9's `drbdadm status`.
//! - [`parse`]: a reader of the `/proc/drbd` format (ours and the kernel's).

pub mod drbdadm;
pub mod events2;
pub mod parse;
pub mod proc_drbd;

use rdbd_types::{ConnState, DiskState, Protocol, Role};
use serde::{Deserialize, Serialize};

/// The counters of `/proc/drbd`'s second line, with DRBD's units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Network send, KiB.
    pub ns_kib: u64,
    /// Network receive, KiB.
    pub nr_kib: u64,
    /// Disk write, KiB.
    pub dw_kib: u64,
    /// Disk read, KiB.
    pub dr_kib: u64,
    /// Activity-log transactions written.
    pub al_writes: u64,
    /// Bitmap pages written.
    pub bm_writes: u64,
    /// Local requests open (`lo`).
    pub local_pending: u64,
    /// Requests sent to the peer and not yet answered (`pe`).
    pub peer_pending: u64,
    /// Requests received from the peer and not yet acknowledged (`ua`).
    pub unacked: u64,
    /// Application requests accepted and not yet completed (`ap`).
    pub app_pending: u64,
    /// Epochs in flight (`ep`).
    pub epochs: u64,
    /// Known out-of-sync data, KiB (`oos`).
    pub out_of_sync_kib: u64,
}

/// A running resync or online verify, as `/proc/drbd` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// Bitmap bits (4 KiB blocks) to transfer in this resync.
    pub total_blocks: u64,
    /// Bits still to transfer.
    pub left_blocks: u64,
    /// Speed over the last ~18 s, KiB/s.
    pub speed_kib_per_s: u64,
    /// Average speed since the resync started, KiB/s.
    pub average_kib_per_s: u64,
    /// The controller's wanted rate, KiB/s (shown on SyncTarget and VerifyS).
    pub want_kib_per_s: u64,
    /// Estimated seconds to the end.
    pub finish_s: u64,
    /// No progress for more than 180 s.
    pub stalled: bool,
}

impl SyncProgress {
    /// Done, in per mille, computed as DRBD 8.4 does for the bar (`>> 10` against
    /// overflow, `+ 1` against division by zero).
    pub fn per_mille_done(&self) -> u64 {
        if self.left_blocks > self.total_blocks {
            return if self.total_blocks == 0 { 1000 } else { 0 };
        }
        let shift = if self.total_blocks > u64::from(u32::MAX) {
            16
        } else {
            10
        };
        let left = self.left_blocks >> shift;
        let total = 1 + (self.total_blocks >> shift);
        1000 - left * 1000 / total
    }
}

/// Everything a tool or a status file needs to know about one resource on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatus {
    /// The resource name.
    pub name: String,
    /// The DRBD minor number (`device /dev/drbdN` or `minor N`).
    pub minor: u32,
    /// This node's role.
    pub role: Role,
    /// The peer's role (`Unknown` when not connected or standalone).
    pub peer_role: Role,
    /// The connection state.
    pub cstate: ConnState,
    /// This node's disk state.
    pub disk: DiskState,
    /// The peer's disk state.
    pub peer_disk: DiskState,
    /// The replication protocol, `None` when the resource has no network configuration.
    pub protocol: Option<Protocol>,
    /// The peer's host name, `None` for a standalone resource.
    pub peer_name: Option<String>,
    /// I/O suspended (`s` instead of `r`).
    pub suspended: bool,
    /// Resync paused because of `resync-after` (`a`).
    pub aftr_isp: bool,
    /// Resync paused by the peer (`p`).
    pub peer_isp: bool,
    /// Resync paused by the user (`u`).
    pub user_isp: bool,
    /// The write-ordering method: `b`, `f`, `d` or `n`.
    pub write_ordering: char,
    /// The counters line.
    pub counters: Counters,
    /// A running resync or verify.
    pub sync: Option<SyncProgress>,
    /// The usable size of the exported device, bytes.
    pub size_bytes: u64,
    /// NBD clients that have the export open.
    pub open_clients: u32,
    /// The export's NBD URI.
    pub nbd_uri: String,
    /// The backing device.
    pub backing_disk: String,
}

impl ResourceStatus {
    /// A status for a resource that is configured but down (`cs:Unconfigured`).
    pub fn unconfigured(name: &str, minor: u32) -> Self {
        ResourceStatus {
            name: name.to_string(),
            minor,
            role: Role::Secondary,
            peer_role: Role::Unknown,
            cstate: ConnState::StandAlone,
            disk: DiskState::Diskless,
            peer_disk: DiskState::DUnknown,
            protocol: None,
            peer_name: None,
            suspended: false,
            aftr_isp: false,
            peer_isp: false,
            user_isp: false,
            write_ordering: 'f',
            counters: Counters::default(),
            sync: None,
            size_bytes: 0,
            open_clients: 0,
            nbd_uri: String::new(),
            backing_disk: String::new(),
        }
    }

    /// True when DRBD would print the minor as `cs:Unconfigured`.
    pub fn is_unconfigured(&self) -> bool {
        self.cstate == ConnState::StandAlone
            && self.disk == DiskState::Diskless
            && self.role == Role::Secondary
    }
}
