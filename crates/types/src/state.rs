//! DRBD 8.4 state names.
//!
//! `Display` prints the name DRBD prints (`WFConnection`, `UpToDate`, ...), and
//! `FromStr` accepts it back, case-insensitively, so that status files and the
//! output of the kernel peer can be parsed with the same tables.

use std::fmt;
use std::str::FromStr;

/// A state name that is not one of DRBD's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{name}'")]
pub struct UnknownStateName {
    /// Which kind of state was being parsed ("role", "disk state", ...).
    pub kind: &'static str,
    /// The text that did not match.
    pub name: String,
}

macro_rules! drbd_names {
    ($(#[$meta:meta])* $ty:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident = $name:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $ty {
            $($(#[$vmeta])* $variant),+
        }

        impl $ty {
            /// Every value, in DRBD's numeric order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The name DRBD prints for this value.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownStateName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| UnknownStateName { kind: $kind, name: s.to_string() })
            }
        }
    };
}

drbd_names!(
    /// The role of a node for a resource (`ro:` in `/proc/drbd`).
    Role, "role", {
        /// The peer's role is not known (not connected).
        Unknown = "Unknown",
        /// May be opened for writing.
        Primary = "Primary",
        /// Receives replicated writes; may not be opened.
        Secondary = "Secondary",
    }
);

drbd_names!(
    /// The disk state of a node's backing device (`ds:` in `/proc/drbd`), in
    /// DRBD's order: later values are "better" data.
    DiskState, "disk state", {
        /// No backing device attached.
        Diskless = "Diskless",
        /// The backing device is being attached.
        Attaching = "Attaching",
        /// An I/O error detached the disk.
        Failed = "Failed",
        /// Attaching, waiting for the peer to decide.
        Negotiating = "Negotiating",
        /// The data is not usable (a sync target, or never synced).
        Inconsistent = "Inconsistent",
        /// Consistent but known to be older than the peer's.
        Outdated = "Outdated",
        /// The peer's disk state is unknown (used for the peer only).
        DUnknown = "DUnknown",
        /// Consistent, not known whether up to date.
        Consistent = "Consistent",
        /// The newest data.
        UpToDate = "UpToDate",
    }
);

drbd_names!(
    /// The connection state (`cs:` in `/proc/drbd`), including the sync states.
    ConnState, "connection state", {
        /// Not configured for networking, or `disconnect`ed.
        StandAlone = "StandAlone",
        /// Being torn down.
        Disconnecting = "Disconnecting",
        /// Transient: about to try to connect.
        Unconnected = "Unconnected",
        /// Transient: the peer timed out.
        Timeout = "Timeout",
        /// Transient: the connection broke.
        BrokenPipe = "BrokenPipe",
        /// Transient: a network failure.
        NetworkFailure = "NetworkFailure",
        /// Transient: the peer violated the protocol.
        ProtocolError = "ProtocolError",
        /// Transient: the connection is being closed.
        TearDown = "TearDown",
        /// Waiting for the peer to connect.
        WFConnection = "WFConnection",
        /// Connected, exchanging the initial parameters.
        WFReportParams = "WFReportParams",
        /// Connected, in sync.
        Connected = "Connected",
        /// About to become sync source.
        StartingSyncS = "StartingSyncS",
        /// About to become sync target.
        StartingSyncT = "StartingSyncT",
        /// Sync source waiting for the peer's bitmap.
        WFBitMapS = "WFBitMapS",
        /// Sync target waiting for the peer's bitmap.
        WFBitMapT = "WFBitMapT",
        /// Sync target waiting for the new sync UUID.
        WFSyncUUID = "WFSyncUUID",
        /// Sending resync data.
        SyncSource = "SyncSource",
        /// Receiving resync data.
        SyncTarget = "SyncTarget",
        /// Online verify, the side that started it.
        VerifyS = "VerifyS",
        /// Online verify, the other side.
        VerifyT = "VerifyT",
        /// Sync source, paused.
        PausedSyncS = "PausedSyncS",
        /// Sync target, paused.
        PausedSyncT = "PausedSyncT",
        /// Congestion mode: the primary is ahead of its peer.
        Ahead = "Ahead",
        /// Congestion mode: the secondary is behind.
        Behind = "Behind",
    }
);

impl ConnState {
    /// True while the peer is connected (at or past `Connected`).
    pub fn is_connected(self) -> bool {
        (self as u8) >= (ConnState::Connected as u8)
    }

    /// True in the states where a resync or verify is running or paused.
    pub fn is_syncing(self) -> bool {
        matches!(
            self,
            ConnState::SyncSource
                | ConnState::SyncTarget
                | ConnState::PausedSyncS
                | ConnState::PausedSyncT
                | ConnState::VerifyS
                | ConnState::VerifyT
        )
    }
}

drbd_names!(
    /// The replication protocol of a resource.
    Protocol, "protocol", {
        /// Asynchronous: complete once written locally and handed to the network.
        A = "A",
        /// Memory-synchronous: complete once the peer has received the data.
        B = "B",
        /// Synchronous: complete once the peer has written the data.
        C = "C",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_drbd() {
        for s in ConnState::ALL {
            assert_eq!(s.to_string().parse::<ConnState>().unwrap(), *s);
        }
        for s in DiskState::ALL {
            assert_eq!(s.to_string().parse::<DiskState>().unwrap(), *s);
        }
        assert_eq!(ConnState::WFConnection.to_string(), "WFConnection");
        assert_eq!(
            "uptodate".parse::<DiskState>().unwrap(),
            DiskState::UpToDate
        );
        assert!("Primaryish".parse::<Role>().is_err());
    }

    #[test]
    fn disk_states_are_ordered_as_drbd_orders_them() {
        assert!(DiskState::UpToDate > DiskState::Consistent);
        assert!(DiskState::Inconsistent < DiskState::Outdated);
        assert!(ConnState::SyncSource.is_connected());
        assert!(!ConnState::WFConnection.is_connected());
    }
}
