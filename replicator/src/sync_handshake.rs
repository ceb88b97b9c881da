//! DRBD 8.4's sync handshake (`drbd_sync_handshake`, `drbd_asb_recover_0p/1p/2p`,
//! drbd_receiver.c) and the generation bookkeeping around a resync, as pure functions.
//!
//! API:
//! - [`handshake`]`(&`[`HandshakeInput`]`) -> `[`Handshake`]: runs [`crate::uuid_compare::compare`],
//!   then the disk-state overrides, the after-split-brain policies ([`AfterSb`], with
//!   `always-asbp`), `--discard-my-data`, the "Inconsistent source" check, `rr-conflict`
//!   ([`RrConflict`]) and dry-run, and returns the [`SyncDecision`] (the state DRBD enters:
//!   WFBitMapS / WFBitMapT / Connected, or a refusal, after which DRBD drops the connection),
//!   whether this node must demote itself (call-pri-lost-after-sb), the handlers to run in order
//!   ([`Handler`]), and the log lines DRBD prints ([`LogLine`]). The caller applies
//!   [`Handshake::comparison`]'s fix-ups (`apply_fixups`) and, for a full sync, sets every bit
//!   of the bitmap (DRBD: `drbd_bmio_set_n_write`, meta-data flag FULL_SYNC) before it sends
//!   the bitmap.
//! - [`parse_after_sb`] / [`RrConflict::parse`]: the drbd.conf values, including
//!   `discard-node-NAME`, which drbdadm rewrites to `discard-local` / `discard-remote`.
//! - Bookkeeping over [`Generations`] (drbd_main.c, drbd_worker.c, drbd_state.c):
//!   - [`source_sync_uuid`]: at resync start on the SyncSource (`drbd_gen_and_send_sync_uuid`):
//!     new bitmap identifier = old bitmap + [`UUID_NEW_BM_OFFSET`], or `random` when the old one
//!     is 0 or JUST_CREATED; the old bitmap identifier goes to history; returns the P_SYNC_UUID
//!     value.
//!   - [`target_sync_uuid_received`]: the SyncTarget on P_SYNC_UUID (`receive_sync_uuid`):
//!     current = the value (primary bit from the role), bitmap = 0, history untouched.
//!   - [`resync_finished_source`] / [`resync_finished_target`]: at the end of a resync without
//!     failed blocks (`drbd_resync_finished`); afterwards both sides hold the same identifiers.
//!     Verify runs and resyncs with failed blocks change no identifiers.
//!   - [`lost_contact_to_peer_data`] and [`new_current_on_peer_loss`]: a Primary (or a node
//!     whose peer is Primary) with UpToDate data and no bitmap identifier that loses the peer's
//!     disk starts a new generation (`after_state_ch`).
//!   - [`skip_initial_sync`]: `new-current-uuid --clear-bitmap` on a just-created pair: the
//!     peer adopts the announced current identifier (`receive_uuids`).
//!   - [`new_current_uuid_cmd`]: `drbdadm new-current-uuid` (`drbd_adm_new_c_uuid`).

use rdbd_types::{ConnState, DiskState, Role};

use crate::uuid_compare::{compare, hg, uuid_flag, CompareInput, Comparison};

mod bookkeeping;
pub use crate::uuid_compare::{Generations, UUID_JUST_CREATED, UUID_NEW_BM_OFFSET};
pub use bookkeeping::{
    lost_contact_to_peer_data, new_current_on_peer_loss, new_current_uuid_cmd,
    resync_finished_source, resync_finished_target, skip_initial_sync, source_sync_uuid,
    target_sync_uuid_received, PeerLoss, PeerLossAction,
};

/// An after-split-brain policy (`after-sb-0pri`, `after-sb-1pri`, `after-sb-2pri`): the
/// wire crate's `P_PROTOCOL` enum, which also knows the drbd.conf names.
pub use rdbd_wire::AfterSbPolicy as AfterSb;

/// A policy value that is not one of DRBD's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {option} value '{value}'")]
pub struct UnknownPolicy {
    /// The option (`after-sb-0pri`, `rr-conflict`, ...).
    pub option: &'static str,
    /// The value that did not match.
    pub value: String,
}

/// Parses an after-sb drbd.conf value. `discard-node-NAME` becomes `discard-local` when
/// NAME is `own_host` and `discard-remote` otherwise, as drbdadm rewrites it.
pub fn parse_after_sb(value: &str, own_host: &str) -> Result<AfterSb, UnknownPolicy> {
    if let Some(node) = value.strip_prefix("discard-node-") {
        return Ok(if node == own_host {
            AfterSb::DiscardLocal
        } else {
            AfterSb::DiscardRemote
        });
    }
    AfterSb::from_name(value).ok_or_else(|| UnknownPolicy {
        option: "after-sb",
        value: value.to_string(),
    })
}

/// `rr-conflict`: what a Primary does when the handshake makes it SyncTarget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RrConflict {
    /// `disconnect`.
    #[default]
    Disconnect,
    /// `call-pri-lost`: run the `pri-lost` handler, then disconnect.
    CallPriLost,
    /// `violently`: become SyncTarget anyway.
    Violently,
}

impl RrConflict {
    /// Parses a drbd.conf value.
    pub fn parse(value: &str) -> Result<RrConflict, UnknownPolicy> {
        match value {
            "disconnect" => Ok(RrConflict::Disconnect),
            "call-pri-lost" => Ok(RrConflict::CallPriLost),
            "violently" => Ok(RrConflict::Violently),
            _ => Err(UnknownPolicy {
                option: "rr-conflict",
                value: value.to_string(),
            }),
        }
    }
}

/// The net options the handshake reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policies {
    /// `after-sb-0pri`.
    pub after_sb_0pri: AfterSb,
    /// `after-sb-1pri`.
    pub after_sb_1pri: AfterSb,
    /// `after-sb-2pri`.
    pub after_sb_2pri: AfterSb,
    /// `rr-conflict`.
    pub rr_conflict: RrConflict,
    /// `always-asbp`: run the policies also when there is no common bitmap ancestor (-100).
    pub always_asbp: bool,
    /// `tentative` / `connect --dry-run`: decide, log, then refuse.
    pub dry_run: bool,
}

/// Everything `drbd_sync_handshake` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeInput {
    /// The identifiers, flags and roles for [`compare`].
    pub compare: CompareInput,
    /// Our disk state as the handshake sees it (`mydisk`: the state, or while attaching the
    /// state the disk will have).
    pub own_disk: DiskState,
    /// Our disk state right now (`device->state.disk`, `Negotiating` while attaching); only
    /// the rr-conflict check reads it.
    pub own_disk_now: DiskState,
    /// The peer's disk state (its P_STATE; while it attaches, Inconsistent or Consistent from
    /// its UUID flag 4).
    pub peer_disk: DiskState,
    /// Bits set in our bitmap when we sent P_UUIDS (`comm_bm_set`).
    pub own_changed_blocks: u64,
    /// Bits set in the peer's bitmap (its P_UUIDS `UI_SIZE` slot).
    pub peer_changed_blocks: u64,
    /// We were told `--discard-my-data`. The peer's is bit 1 of `compare.peer_flags`.
    pub discard_my_data: bool,
    /// Demoting this node to Secondary would succeed now; read by call-pri-lost-after-sb.
    /// In DRBD 8.4 it never does during the handshake: `drbd_change_state` is refused while
    /// the connection is being established (STATE_SENT: SS_IN_TRANSIENT_STATE), so the
    /// node passes `false` and the losing Primary runs `pri-lost-after-sb`.
    pub can_demote: bool,
    /// The net options.
    pub policies: Policies,
}

impl HandshakeInput {
    /// An input from the peer's P_UUIDS (identifiers, flags, changed blocks), otherwise as
    /// [`HandshakeInput::new`].
    pub fn from_peer_uuids(own: Generations, peer: &rdbd_wire::Uuids) -> HandshakeInput {
        let mut input = HandshakeInput::new(CompareInput::from_peer_uuids(own, peer));
        input.peer_changed_blocks = peer.dirty_bits;
        input
    }

    /// An input with both disks UpToDate, no changed blocks, default policies.
    pub fn new(compare: CompareInput) -> HandshakeInput {
        HandshakeInput {
            compare,
            own_disk: DiskState::UpToDate,
            own_disk_now: DiskState::UpToDate,
            peer_disk: DiskState::UpToDate,
            own_changed_blocks: 0,
            peer_changed_blocks: 0,
            discard_my_data: false,
            can_demote: true,
            policies: Policies::default(),
        }
    }
}

/// Why the handshake refuses to continue (DRBD returns `C_MASK` and drops the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The data sets are unrelated (hg -1000).
    Unrelated,
    /// Both sides need at least this protocol version.
    RequiresProtocol {
        /// The protocol version.
        proto: u32,
    },
    /// Both sides need this protocol version and these feature flags.
    RequiresFeatures {
        /// The protocol version.
        proto: u32,
        /// The feature flags.
        features: u32,
    },
    /// Split brain, not resolved (the `split-brain` handler ran).
    SplitBrain,
    /// This node would become SyncSource with Inconsistent data.
    InconsistentSource,
    /// This Primary would become SyncTarget and rr-conflict is not `violently`.
    PrimaryWouldBeTarget,
    /// Dry run: the decision it would have taken (hg).
    DryRun {
        /// The hg value.
        hg: i32,
    },
}

/// The outcome of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDecision {
    /// Connected, no resync.
    NoSync,
    /// Become SyncSource (WFBitMapS).
    Source {
        /// Full sync: set every bit first.
        full: bool,
    },
    /// Become SyncTarget (WFBitMapT).
    Target {
        /// Full sync: set every bit first.
        full: bool,
    },
    /// Drop the connection.
    Refuse(Refusal),
}

impl SyncDecision {
    /// The connection state DRBD enters (`None`: the connection is dropped).
    pub fn next_conn_state(self) -> Option<ConnState> {
        match self {
            SyncDecision::NoSync => Some(ConnState::Connected),
            SyncDecision::Source { .. } => Some(ConnState::WFBitMapS),
            SyncDecision::Target { .. } => Some(ConnState::WFBitMapT),
            SyncDecision::Refuse(_) => None,
        }
    }
}

/// A handler DRBD runs during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `initial-split-brain`: split brain detected (hg ±100), before any recovery.
    InitialSplitBrain,
    /// `split-brain`: split brain not resolved.
    SplitBrain,
    /// `pri-lost-after-sb`: call-pri-lost-after-sb could not demote this node.
    PriLostAfterSb,
    /// `pri-lost`: rr-conflict call-pri-lost.
    PriLost,
}

impl Handler {
    /// The handler's drbd.conf name.
    pub fn name(self) -> &'static str {
        match self {
            Handler::InitialSplitBrain => "initial-split-brain",
            Handler::SplitBrain => "split-brain",
            Handler::PriLostAfterSb => "pri-lost-after-sb",
            Handler::PriLost => "pri-lost",
        }
    }
}

/// A log level, as DRBD's `drbd_info` / `drbd_warn` / `drbd_err` / `drbd_alert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Err,
    /// Alert.
    Alert,
}

/// One line DRBD would log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The level.
    pub level: Level,
    /// The text, without the device prefix.
    pub text: String,
}

/// The result of [`handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The generation comparison (hg, rule, fix-ups to apply).
    pub comparison: Comparison,
    /// The final hg value.
    pub hg: i32,
    /// What to do.
    pub decision: SyncDecision,
    /// call-pri-lost-after-sb demoted this node: it must become Secondary now.
    pub demote: bool,
    /// Handlers to run, in order.
    pub handlers: Vec<Handler>,
    /// What DRBD logs, in order, starting with `uuid_compare()=... by rule ...`.
    pub log: Vec<LogLine>,
}

struct Ctx<'a> {
    input: &'a HandshakeInput,
    role: Role,
    demote: bool,
    handlers: Vec<Handler>,
    log: Vec<LogLine>,
}

impl Ctx<'_> {
    fn log(&mut self, level: Level, text: impl Into<String>) {
        self.log.push(LogLine {
            level,
            text: text.into(),
        });
    }

    /// `drbd_asb_recover_0p`.
    fn recover_0p(&mut self) -> i32 {
        let i = self.input;
        let own_pri = i.compare.own.bitmap & 1;
        let peer_pri = i.compare.peer.bitmap & 1;
        let ch_self = i.own_changed_blocks;
        let ch_peer = i.peer_changed_blocks;
        let tiebreak = if i.compare.resolve_conflicts { -1 } else { 1 };
        let policy = i.policies.after_sb_0pri;
        match policy {
            AfterSb::Consensus
            | AfterSb::DiscardSecondary
            | AfterSb::CallHelper
            | AfterSb::Violently => {
                self.log(Level::Err, "Configuration error.");
                hg::SPLIT_BRAIN_DISCONNECT
            }
            AfterSb::Disconnect => hg::SPLIT_BRAIN_DISCONNECT,
            AfterSb::DiscardLocal => -1,
            AfterSb::DiscardRemote => 1,
            AfterSb::DiscardYoungerPrimary
            | AfterSb::DiscardOlderPrimary
            | AfterSb::DiscardZeroChanges
            | AfterSb::DiscardLeastChanges => {
                if matches!(
                    policy,
                    AfterSb::DiscardYoungerPrimary | AfterSb::DiscardOlderPrimary
                ) {
                    let younger = policy == AfterSb::DiscardYoungerPrimary;
                    match (own_pri, peer_pri) {
                        (0, 1) => return if younger { -1 } else { 1 },
                        (1, 0) => return if younger { 1 } else { -1 },
                        _ => self.log(
                            Level::Warn,
                            "Discard younger/older primary did not find a decision\nUsing discard-least-changes instead",
                        ),
                    }
                }
                if policy != AfterSb::DiscardLeastChanges {
                    if ch_peer == 0 && ch_self == 0 {
                        return tiebreak;
                    }
                    if ch_peer == 0 {
                        return 1;
                    }
                    if ch_self == 0 {
                        return -1;
                    }
                    if policy == AfterSb::DiscardZeroChanges {
                        return hg::SPLIT_BRAIN_DISCONNECT;
                    }
                }
                match ch_self.cmp(&ch_peer) {
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Greater => 1,
                    std::cmp::Ordering::Equal => tiebreak,
                }
            }
        }
    }

    /// call-pri-lost-after-sb: when `demote_needed` (0pri says this Primary loses), demote if
    /// possible and keep 0pri's verdict, else run `pri-lost-after-sb` and give up (-100).
    fn call_pri_lost(&mut self, demote_needed: bool, hg0: i32) -> i32 {
        if !demote_needed {
            return hg0;
        }
        if self.input.can_demote {
            self.log(Level::Warn, "Successfully gave up primary role.");
            self.demote = true;
            self.role = Role::Secondary;
            hg0
        } else {
            self.handlers.push(Handler::PriLostAfterSb);
            hg::SPLIT_BRAIN_DISCONNECT
        }
    }

    /// `drbd_asb_recover_1p`.
    fn recover_1p(&mut self) -> i32 {
        match self.input.policies.after_sb_1pri {
            AfterSb::Disconnect => hg::SPLIT_BRAIN_DISCONNECT,
            AfterSb::Consensus => {
                let h = self.recover_0p();
                match (h, self.role) {
                    (-1, Role::Secondary) | (1, Role::Primary) => h,
                    _ => hg::SPLIT_BRAIN_DISCONNECT,
                }
            }
            AfterSb::Violently => self.recover_0p(),
            AfterSb::DiscardSecondary => {
                if self.role == Role::Primary {
                    1
                } else {
                    -1
                }
            }
            AfterSb::CallHelper => {
                let h = self.recover_0p();
                let primary = self.role == Role::Primary;
                self.call_pri_lost(h == -1 && primary, h)
            }
            _ => {
                self.log(Level::Err, "Configuration error.");
                hg::SPLIT_BRAIN_DISCONNECT
            }
        }
    }

    /// `drbd_asb_recover_2p`.
    fn recover_2p(&mut self) -> i32 {
        match self.input.policies.after_sb_2pri {
            AfterSb::Disconnect => hg::SPLIT_BRAIN_DISCONNECT,
            AfterSb::Violently => self.recover_0p(),
            AfterSb::CallHelper => {
                let h = self.recover_0p();
                self.call_pri_lost(h == -1, h)
            }
            _ => {
                self.log(Level::Err, "Configuration error.");
                hg::SPLIT_BRAIN_DISCONNECT
            }
        }
    }
}

/// `drbd_sync_handshake`: what to do after comparing the generations.
pub fn handshake(input: &HandshakeInput) -> Handshake {
    let comparison = compare(&input.compare);
    let mut cx = Ctx {
        input,
        role: input.compare.own_role,
        demote: false,
        handlers: Vec::new(),
        log: Vec::new(),
    };
    for note in &comparison.notes {
        let level = if note.starts_with("Equivalent unrotated UUIDs, but both") {
            Level::Err
        } else if note.starts_with("Equivalent") {
            Level::Warn
        } else {
            Level::Info
        };
        cx.log(level, *note);
    }
    cx.log(Level::Info, comparison.log_line());
    let mut h = comparison.hg;
    let decision = decide(&mut cx, &mut h);
    Handshake {
        comparison,
        hg: h,
        decision,
        demote: cx.demote,
        handlers: cx.handlers,
        log: cx.log,
    }
}

fn decide(cx: &mut Ctx<'_>, h: &mut i32) -> SyncDecision {
    let input = cx.input;
    if *h == hg::UNRELATED {
        cx.log(Level::Alert, "Unrelated data, aborting!");
        return SyncDecision::Refuse(Refusal::Unrelated);
    }
    if *h < -0x10000 {
        let v = h.unsigned_abs();
        let (proto, features) = (v & 0xff, (v >> 8) & 0xff);
        cx.log(
            Level::Alert,
            format!("To resolve this both sides have to support at least protocol {proto} and feature flags 0x{features:x}"),
        );
        return SyncDecision::Refuse(Refusal::RequiresFeatures { proto, features });
    }
    if *h < -1000 {
        let proto = h.unsigned_abs() - 1000;
        cx.log(
            Level::Alert,
            format!("To resolve this both sides have to support at least protocol {proto}"),
        );
        return SyncDecision::Refuse(Refusal::RequiresProtocol { proto });
    }

    let (mydisk, peer_disk) = (input.own_disk, input.peer_disk);
    if (mydisk == DiskState::Inconsistent && peer_disk > DiskState::Inconsistent)
        || (peer_disk == DiskState::Inconsistent && mydisk > DiskState::Inconsistent)
    {
        let full = *h == hg::SPLIT_BRAIN_DISCONNECT || h.abs() == 2;
        *h = if mydisk > DiskState::Inconsistent {
            1
        } else {
            -1
        };
        if full {
            *h *= 2;
        }
        let side = if *h > 0 { "source" } else { "target" };
        cx.log(
            Level::Info,
            format!("Becoming sync {side} due to disk states."),
        );
    }

    if h.abs() == 100 {
        cx.handlers.push(Handler::InitialSplitBrain);
    }

    if *h == hg::SPLIT_BRAIN_AUTO
        || (*h == hg::SPLIT_BRAIN_DISCONNECT && input.policies.always_asbp)
    {
        let pcount =
            u8::from(cx.role == Role::Primary) + u8::from(input.compare.peer_role == Role::Primary);
        let forced = *h == hg::SPLIT_BRAIN_DISCONNECT;
        *h = match pcount {
            0 => cx.recover_0p(),
            1 => cx.recover_1p(),
            _ => cx.recover_2p(),
        };
        if h.abs() < 100 {
            let from = if *h < 0 { "peer" } else { "this" };
            cx.log(
                Level::Warn,
                format!("Split-Brain detected, {pcount} primaries, automatically solved. Sync from {from} node"),
            );
            if forced {
                cx.log(
                    Level::Warn,
                    "Doing a full sync, since UUIDs where ambiguous.",
                );
                *h *= 2;
            }
        }
    }

    if *h == hg::SPLIT_BRAIN_DISCONNECT {
        let peer_discards = input.compare.peer_flags & uuid_flag::DISCARD_MY_DATA != 0;
        if input.discard_my_data && !peer_discards {
            *h = -1;
        }
        if !input.discard_my_data && peer_discards {
            *h = 1;
        }
        if h.abs() < 100 {
            let from = if *h < 0 { "peer" } else { "this" };
            cx.log(
                Level::Warn,
                format!("Split-Brain detected, manually solved. Sync from {from} node"),
            );
        }
    }

    if *h == hg::SPLIT_BRAIN_DISCONNECT {
        cx.log(
            Level::Alert,
            "Split-Brain detected but unresolved, dropping connection!",
        );
        cx.handlers.push(Handler::SplitBrain);
        return SyncDecision::Refuse(Refusal::SplitBrain);
    }

    if *h > 0 && mydisk <= DiskState::Inconsistent {
        cx.log(
            Level::Err,
            "I shall become SyncSource, but I am inconsistent!",
        );
        return SyncDecision::Refuse(Refusal::InconsistentSource);
    }

    if *h < 0 && cx.role == Role::Primary && input.own_disk_now >= DiskState::Consistent {
        match input.policies.rr_conflict {
            RrConflict::CallPriLost | RrConflict::Disconnect => {
                if input.policies.rr_conflict == RrConflict::CallPriLost {
                    cx.handlers.push(Handler::PriLost);
                }
                cx.log(Level::Err, "I shall become SyncTarget, but I am primary!");
                return SyncDecision::Refuse(Refusal::PrimaryWouldBeTarget);
            }
            RrConflict::Violently => {
                cx.log(
                    Level::Warn,
                    "Becoming SyncTarget, violating the stable-dataassumption",
                );
            }
        }
    }

    if input.policies.dry_run {
        if *h == 0 {
            cx.log(
                Level::Info,
                "dry-run connect: No resync, would become Connected immediately.",
            );
        } else {
            let state = if *h > 0 { "SyncSource" } else { "SyncTarget" };
            let kind = if h.abs() >= 2 {
                "full"
            } else {
                "bit-map based"
            };
            cx.log(
                Level::Info,
                format!("dry-run connect: Would become {state}, doing a {kind} resync."),
            );
        }
        return SyncDecision::Refuse(Refusal::DryRun { hg: *h });
    }

    let full = h.abs() >= 2;
    if full {
        cx.log(
            Level::Info,
            "Writing the whole bitmap, full sync required after drbd_sync_handshake.",
        );
    }
    match (*h).cmp(&0) {
        std::cmp::Ordering::Greater => SyncDecision::Source { full },
        std::cmp::Ordering::Less => SyncDecision::Target { full },
        std::cmp::Ordering::Equal => {
            if input.own_changed_blocks != 0 {
                cx.log(
                    Level::Info,
                    format!(
                        "No resync, but {} bits in bitmap!",
                        input.own_changed_blocks
                    ),
                );
            }
            SyncDecision::NoSync
        }
    }
}

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
