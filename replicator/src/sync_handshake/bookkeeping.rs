//! Generation bookkeeping around a resync and a lost peer (drbd_main.c
//! `drbd_gen_and_send_sync_uuid`, `drbd_uuid_set`, `drbd_uuid_set_bm`; drbd_receiver.c
//! `receive_sync_uuid`, `receive_uuids`; drbd_worker.c `drbd_resync_finished`; drbd_state.c
//! `after_state_ch`; drbd_nl.c `drbd_adm_new_c_uuid`). Re-exported by [`super`].

use rdbd_types::{DiskState, Role};

use crate::uuid_compare::{uuid_flag, Generations, UUID_JUST_CREATED, UUID_NEW_BM_OFFSET};

/// `drbd_uuid_set(UI_BITMAP, v)`: a non-zero old bitmap identifier moves to history first.
fn set_bitmap_rotating(g: &mut Generations, value: u64) {
    if g.bitmap != 0 {
        g.history[1] = g.history[0];
        g.history[0] = g.bitmap;
    }
    g.bitmap = value;
}

/// `drbd_uuid_set_bm(0)`: the bitmap identifier moves to history.
fn clear_bitmap_to_history(g: &mut Generations) {
    if g.bitmap == 0 {
        return;
    }
    g.history[1] = g.history[0];
    g.history[0] = g.bitmap;
    g.bitmap = 0;
}

/// The SyncSource at resync start (`drbd_gen_and_send_sync_uuid`): returns the P_SYNC_UUID
/// value, which is also the new bitmap identifier.
pub fn source_sync_uuid(g: &mut Generations, random: u64) -> u64 {
    let uuid = if g.bitmap != 0 && g.bitmap != UUID_JUST_CREATED {
        g.bitmap.wrapping_add(UUID_NEW_BM_OFFSET)
    } else {
        random
    };
    set_bitmap_rotating(g, uuid);
    uuid
}

/// The SyncTarget on P_SYNC_UUID (`receive_sync_uuid`): current = `sync_uuid` (primary bit per
/// `role`), bitmap = 0; the old current is not rotated into history.
pub fn target_sync_uuid_received(g: &mut Generations, sync_uuid: u64, role: Role) {
    g.set_current(sync_uuid, role);
    g.bitmap = 0;
}

/// The SyncSource at the end of a resync without failed blocks: the bitmap identifier goes to
/// history; our record of the peer becomes a copy of ours.
pub fn resync_finished_source(own: &mut Generations, peer: &mut Generations) {
    clear_bitmap_to_history(own);
    *peer = *own;
}

/// The SyncTarget at the end of a resync without failed blocks (`drbd_resync_finished`): it
/// takes the peer's bitmap and history, rotates its own current in as bitmap, takes the peer's
/// current (primary bit per `role`), then moves the bitmap identifier to history. Our record of
/// the peer becomes a copy of ours.
pub fn resync_finished_target(own: &mut Generations, peer: &mut Generations, role: Role) {
    own.bitmap = peer.bitmap;
    own.history = peer.history;
    let old_current = own.current;
    set_bitmap_rotating(own, old_current);
    own.set_current(peer.current, role);
    clear_bitmap_to_history(own);
    *peer = *own;
}

/// `lost_contact_to_peer_data`: whether a change of the peer's disk state from `old` to `new`
/// loses the peer's copy of the data.
pub fn lost_contact_to_peer_data(old: DiskState, new: DiskState) -> bool {
    use DiskState::{DUnknown, Diskless, Failed, Inconsistent, Outdated};
    if (old >= Inconsistent && old != DUnknown && old != Outdated)
        && (new < Inconsistent || new == DUnknown || new == Outdated)
    {
        return true;
    }
    old == DUnknown && matches!(new, Diskless | Failed | Outdated)
}

/// A state change as far as [`new_current_on_peer_loss`] cares (the new state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLoss {
    /// The peer's disk state before.
    pub old_peer_disk: DiskState,
    /// The peer's disk state after.
    pub new_peer_disk: DiskState,
    /// Our role after.
    pub role: Role,
    /// The peer's role after.
    pub peer_role: Role,
    /// Our disk state after.
    pub disk: DiskState,
    /// I/O is suspended (then DRBD only marks NEW_CUR_UUID and generates it on resume).
    pub suspended: bool,
}

/// What [`new_current_on_peer_loss`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerLossAction {
    /// Nothing.
    None,
    /// A new current identifier was generated (send P_UUIDS if still connected).
    NewCurrent,
    /// I/O is frozen: remember NEW_CUR_UUID and generate it when I/O resumes.
    Deferred,
}

/// `after_state_ch`: a node that is Primary (or whose peer is) with UpToDate data and no
/// bitmap identifier starts a new generation when it loses contact to the peer's data.
pub fn new_current_on_peer_loss(
    g: &mut Generations,
    change: &PeerLoss,
    random: u64,
) -> PeerLossAction {
    if !lost_contact_to_peer_data(change.old_peer_disk, change.new_peer_disk) {
        return PeerLossAction::None;
    }
    let primary_present = change.role == Role::Primary || change.peer_role == Role::Primary;
    if !(primary_present && g.bitmap == 0 && change.disk >= DiskState::UpToDate) {
        return PeerLossAction::None;
    }
    if change.suspended {
        return PeerLossAction::Deferred;
    }
    g.new_current(random, change.role);
    PeerLossAction::NewCurrent
}

/// `receive_uuids`: whether this just-created node, connected at protocol >= 90, adopts the
/// peer's current identifier because the peer ran `new-current-uuid --clear-bitmap` (UUID flag
/// 8). If so, the caller clears the bitmap, sets both disks UpToDate, and this sets current =
/// the peer's, bitmap = 0.
pub fn skip_initial_sync(
    g: &mut Generations,
    connected: bool,
    agreed_pro_version: u32,
    peer_current: u64,
    peer_flags: u64,
    role: Role,
) -> bool {
    let skip = connected
        && agreed_pro_version >= 90
        && g.current == UUID_JUST_CREATED
        && peer_flags & uuid_flag::SKIP_INITIAL_SYNC != 0;
    if skip {
        g.set_current(peer_current, role);
        g.bitmap = 0;
    }
    skip
}

/// `drbdadm new-current-uuid` (`drbd_adm_new_c_uuid`): the bitmap identifier goes to history,
/// then the current one becomes the bitmap identifier and `random` the current one. With
/// `--clear-bitmap` the caller also clears the bitmap (and on a just-created connected pair
/// announces the skip with UUID flag 8).
pub fn new_current_uuid_cmd(g: &mut Generations, random: u64, role: Role) {
    clear_bitmap_to_history(g);
    g.new_current(random, role);
}
