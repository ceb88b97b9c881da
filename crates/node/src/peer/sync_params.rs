//! The peer's sync parameters (`P_SYNC_PARAM89`), adopted as DRBD 8.4 does it
//! (D84 drbd_receiver.c `receive_SyncParam`), and ours sent when `adjust` changes them
//! while connected (drbd_nl.c `drbd_adm_disk_opts` -> `drbd_send_sync_param`).
//!
//! DRBD replaces its own settings with what the peer sends, at every connect and
//! whenever the peer sends the packet again later:
//! - `resync-rate` always (when this node has a disk), the `c-*` controller options at
//!   protocol >= 95; silently (rdbd logs one line naming what changed);
//! - `verify-alg` / `csums-alg` when they differ from ours and are not empty: during the
//!   handshake a difference is refused ("Different verify-alg settings", see
//!   `session::verify::check_algs`); later the peer's algorithm is adopted with
//!   `using verify-alg: "sha1"`, or, when it is unknown here, the connection is dropped
//!   after `Can not allocate "x" as verify-alg (reason: -2)`. An empty algorithm from the
//!   peer does not clear ours.
//!
//! The adopted values become this node's settings in force ([`PeerLink::settings_now`]):
//! a running SyncTarget's rate controller takes them at once, later resyncs and
//! connections use them (and send them to the peer), until the next `adjust`.

use rdbd_config::Settings;
use rdbd_replicator::resync::digest::DigestAlg;
use rdbd_wire::SyncParams;

use tokio::sync::oneshot;

use super::{lock, Command, PeerConfig, PeerLink};

/// `-ENOENT`: what the kernel's `crypto_alloc_ahash` returns for an unknown algorithm.
const CRYPTO_UNKNOWN_ALG_REASON: i32 = -2;

/// The `P_SYNC_PARAM89` that describes `s`.
pub(crate) fn sync_params_of(s: &Settings) -> SyncParams {
    SyncParams {
        resync_rate_kib: s.resync_rate_kib,
        verify_alg: s.verify_alg.clone().unwrap_or_default(),
        csums_alg: s.csums_alg.clone().unwrap_or_default(),
        c_plan_ahead_ds: s.c_plan_ahead,
        c_delay_target_ds: s.c_delay_target,
        c_fill_target_sectors: s.c_fill_target_sect,
        c_max_rate_kib: s.c_max_rate_kib,
    }
}

/// The settings after adopting the peer's parameters, and what changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adoption {
    /// The new settings in force.
    pub(crate) settings: Settings,
    /// `option old -> new` for every changed rate option (rdbd's own log line).
    pub(crate) rate_changes: Vec<String>,
    /// DRBD's `using verify-alg: "x"` / `using csums-alg: "x"` lines.
    pub(crate) alg_lines: Vec<String>,
}

/// Adopts `peer` into `ours` as `receive_SyncParam` does after the handshake, at agreed
/// protocol `apv`; `has_disk`: this node has a local disk (`get_ldev`). `Err` is DRBD's
/// log line for an algorithm this node cannot use; the connection is then dropped.
pub(crate) fn adopt(
    ours: &Settings,
    peer: &SyncParams,
    apv: u32,
    has_disk: bool,
) -> Result<Adoption, String> {
    let mut s = ours.clone();
    let mut rate_changes = Vec::new();
    let mut alg_lines = Vec::new();
    if has_disk {
        let mut fields: Vec<(&str, &mut u32, u32)> =
            vec![("resync-rate", &mut s.resync_rate_kib, peer.resync_rate_kib)];
        if apv > 94 {
            fields.extend([
                ("c-plan-ahead", &mut s.c_plan_ahead, peer.c_plan_ahead_ds),
                (
                    "c-delay-target",
                    &mut s.c_delay_target,
                    peer.c_delay_target_ds,
                ),
                (
                    "c-fill-target",
                    &mut s.c_fill_target_sect,
                    peer.c_fill_target_sectors,
                ),
                ("c-max-rate", &mut s.c_max_rate_kib, peer.c_max_rate_kib),
            ]);
        }
        for (name, field, new) in fields {
            if *field != new {
                rate_changes.push(format!("{name} {} -> {new}", *field));
                *field = new;
            }
        }
    }
    if apv >= 88 {
        let mut algs: Vec<(&str, &mut Option<String>, &str)> =
            vec![("verify-alg", &mut s.verify_alg, peer.verify_alg.as_str())];
        if apv >= 89 {
            algs.push(("csums-alg", &mut s.csums_alg, peer.csums_alg.as_str()));
        }
        // Both are checked before either is adopted (DRBD allocates both transforms first).
        for (what, _, theirs) in &algs {
            if !theirs.is_empty() && DigestAlg::parse(theirs).is_err() {
                return Err(format!(
                    "Can not allocate \"{theirs}\" as {what} (reason: {CRYPTO_UNKNOWN_ALG_REASON})"
                ));
            }
        }
        for (what, field, theirs) in algs {
            let mine = field.as_deref().unwrap_or("");
            if !theirs.is_empty() && !mine.eq_ignore_ascii_case(theirs) {
                alg_lines.push(format!("using {what}: \"{theirs}\""));
                *field = Some(theirs.to_string());
            }
        }
    }
    Ok(Adoption {
        settings: s,
        rate_changes,
        alg_lines,
    })
}

impl PeerLink {
    /// Makes `settings` the ones in force ([`PeerLink::settings_now`]) for this and the
    /// following connections; `current` is the session's configuration.
    pub(crate) fn adopt_settings(&self, current: &PeerConfig, settings: Settings) {
        let mut next = lock(&self.next_cfg);
        let cfg = next.get_or_insert_with(|| current.clone());
        cfg.settings = settings;
    }

    /// `adjust` changed only csums-alg / verify-alg (in `cfg`): a connected session takes
    /// them and sends them to the peer (DRBD `drbdsetup net-options`); without a session
    /// the next connection uses them.
    pub async fn change_sync_algs(&self, cfg: PeerConfig) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SyncAlgs(Box::new(cfg.clone()), tx))
            .map_err(|_| "the connection manager is gone".to_string())?;
        match tokio::time::timeout(SYNC_ALGS_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                *lock(&self.next_cfg) = Some(cfg);
                Ok(())
            }
            Err(_) => Err("the connection did not take the new algorithms within 10 s".into()),
        }
    }
}

/// How long `adjust` waits for the session to take new algorithms.
const SYNC_ALGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The settings in force with `new`'s csums-alg and verify-alg (`drbd_adm_net_opts`);
/// `resync_running` / `verify_running`: refusals as DRBD's (ERR_CSUMS_RESYNC_RUNNING,
/// ERR_VERIFY_RUNNING) and for algorithms rdbd does not know.
pub(crate) fn with_new_algs(
    now: &Settings,
    new: &Settings,
    resync_running: bool,
    verify_running: bool,
) -> Result<Settings, String> {
    let same = |a: &Option<String>, b: &Option<String>| {
        a.as_deref()
            .unwrap_or("")
            .eq_ignore_ascii_case(b.as_deref().unwrap_or(""))
    };
    if resync_running && !same(&now.csums_alg, &new.csums_alg) {
        return Err("Can not change csums-alg while resync is in progress".into());
    }
    if verify_running && !same(&now.verify_alg, &new.verify_alg) {
        return Err("Can not change verify-alg while online verify runs".into());
    }
    for (what, alg) in [
        ("csums-alg", &new.csums_alg),
        ("verify-alg", &new.verify_alg),
    ] {
        if let Some(alg) = alg.as_deref().filter(|a| !a.is_empty()) {
            DigestAlg::parse(alg).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    let mut s = now.clone();
    s.csums_alg = new.csums_alg.clone();
    s.verify_alg = new.verify_alg.clone();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate_kib: u32, verify: Option<&str>) -> Settings {
        let text = "resource r0 { on a { device /dev/drbd0; disk /a; address 127.0.0.1:7000; meta-disk internal; }\n\
                    on b { device /dev/drbd0; disk /b; address 127.0.0.1:7001; meta-disk internal; } }\n";
        let c = rdbd_config::parse_drbd_conf(text, std::path::Path::new("t.conf")).expect("parses");
        let mut s = c.resource("r0").expect("r0").settings();
        s.resync_rate_kib = rate_kib;
        s.verify_alg = verify.map(str::to_string);
        s
    }

    #[test]
    fn rate_options_are_taken_from_the_peer() {
        let ours = settings(4096, None);
        let mut peer = sync_params_of(&ours);
        peer.resync_rate_kib = 16384;
        peer.c_max_rate_kib = ours.c_max_rate_kib + 1;
        let a = adopt(&ours, &peer, 101, true).unwrap();
        assert_eq!(a.settings.resync_rate_kib, 16384);
        assert_eq!(a.settings.c_max_rate_kib, ours.c_max_rate_kib + 1);
        assert_eq!(a.rate_changes.len(), 2, "{:?}", a.rate_changes);
        assert!(a.rate_changes[0].starts_with("resync-rate 4096 -> 16384"));
        assert!(a.alg_lines.is_empty());
    }

    #[test]
    fn controller_options_need_protocol_95_and_a_disk() {
        let ours = settings(4096, None);
        let mut peer = sync_params_of(&ours);
        peer.resync_rate_kib = 100;
        peer.c_plan_ahead_ds = ours.c_plan_ahead + 5;
        let old = adopt(&ours, &peer, 94, true).unwrap();
        assert_eq!(old.settings.resync_rate_kib, 100);
        assert_eq!(old.settings.c_plan_ahead, ours.c_plan_ahead);
        let diskless = adopt(&ours, &peer, 101, false).unwrap();
        assert_eq!(diskless.settings, ours);
    }

    #[test]
    fn algorithms_are_adopted_but_not_cleared() {
        let ours = settings(4096, Some("md5"));
        let mut peer = sync_params_of(&ours);
        peer.verify_alg = "sha1".into();
        peer.csums_alg = "crc32c".into();
        let a = adopt(&ours, &peer, 101, true).unwrap();
        assert_eq!(a.settings.verify_alg.as_deref(), Some("sha1"));
        assert_eq!(a.settings.csums_alg.as_deref(), Some("crc32c"));
        assert_eq!(
            a.alg_lines,
            ["using verify-alg: \"sha1\"", "using csums-alg: \"crc32c\""]
        );
        peer.verify_alg.clear();
        peer.csums_alg.clear();
        let b = adopt(&ours, &peer, 101, true).unwrap();
        assert_eq!(b.settings.verify_alg.as_deref(), Some("md5"));
        assert!(b.alg_lines.is_empty());
    }

    #[test]
    fn local_algorithm_changes_are_refused_while_they_are_in_use() {
        let now = settings(4096, Some("md5"));
        let mut new = settings(8192, Some("sha1"));
        new.csums_alg = Some("crc32c".into());
        let s = with_new_algs(&now, &new, false, false).unwrap();
        assert_eq!(s.verify_alg.as_deref(), Some("sha1"));
        assert_eq!(s.csums_alg.as_deref(), Some("crc32c"));
        assert_eq!(s.resync_rate_kib, 4096, "only the algorithms change");
        assert_eq!(
            with_new_algs(&now, &new, false, true).unwrap_err(),
            "Can not change verify-alg while online verify runs"
        );
        assert_eq!(
            with_new_algs(&now, &new, true, false).unwrap_err(),
            "Can not change csums-alg while resync is in progress"
        );
        let unchanged_csums = Settings {
            csums_alg: None,
            ..new.clone()
        };
        assert!(with_new_algs(&now, &unchanged_csums, true, false).is_ok());
    }

    #[test]
    fn an_unknown_algorithm_is_refused() {
        let ours = settings(4096, Some("md5"));
        let mut peer = sync_params_of(&ours);
        peer.csums_alg = "sha1".into();
        peer.verify_alg = "whirlpool".into();
        let e = adopt(&ours, &peer, 101, true).unwrap_err();
        assert_eq!(
            e,
            "Can not allocate \"whirlpool\" as verify-alg (reason: -2)"
        );
    }
}
