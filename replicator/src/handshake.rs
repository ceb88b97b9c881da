//! The connection handshake on the data socket, as a state machine that does no I/O.
//!
//! Order (D84 drbd_receiver.c `conn_connect`, `drbd_do_features`, `drbd_do_auth`,
//! `receive_protocol`, `drbd_connected`):
//! 1. both sides send `P_CONNECTION_FEATURES` (h80); the agreed version is the smaller
//!    maximum, and rdbd insists on exactly [`PROTOCOL_VERSION`] (101);
//! 2. with `cram-hmac-alg`, both send a 64-byte `P_AUTH_CHALLENGE`, answer the peer's
//!    with `P_AUTH_RESPONSE` = HMAC(secret, peer challenge) and verify the peer's answer;
//! 3. both send `P_PROTOCOL`, `P_SYNC_PARAM89`, `P_SIZES`, `P_UUIDS`, `P_STATE`; the peer's
//!    `P_PROTOCOL` must be compatible ([`check_protocol`]) and its size large enough
//!    ([`agree_size`]).
//!
//! The machine is fed every packet the data socket delivers and answers with packets to
//! send; it finishes with a [`PeerReport`] once the peer's `P_STATE` arrived.

use rdbd_types::Protocol;
use rdbd_wire::auth::{auth_response, verify_response, CramHmacAlg, CHALLENGE_BYTES};
use rdbd_wire::{
    AfterSbPolicy, ConnectionFeatures, DrbdState, HeaderKind, Packet, ProtocolParams, Sizes,
    SyncParams, Uuids, CF_DISCARD_MY_DATA, FF_TRIM, PROTOCOL_VERSION,
};

/// Why a handshake was refused. Every message names what differs, with both values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer speaks a protocol range without 101.
    #[error("incompatible DRBD dialects: the peer speaks protocol versions {peer_min}-{peer_max}, rdbd only 101")]
    Dialect {
        /// Peer's minimum.
        peer_min: u32,
        /// Peer's maximum.
        peer_max: u32,
    },
    /// The peer wants authentication and this node has no `cram-hmac-alg`.
    #[error("the peer requires cram-hmac authentication, but this node has no cram-hmac-alg/shared-secret configured")]
    PeerWantsAuth,
    /// This node wants authentication and the peer skipped it.
    #[error("authentication failed: this node has cram-hmac-alg {0} but the peer sent {1} instead of P_AUTH_CHALLENGE (peer has no cram-hmac-alg?)")]
    PeerSkippedAuth(String, String),
    /// The peer's HMAC does not verify.
    #[error("authentication of peer failed: its {alg} response does not match our challenge (wrong shared-secret?)")]
    AuthFailed {
        /// The digest algorithm.
        alg: String,
    },
    /// The peer's challenge has the wrong size.
    #[error(
        "authentication failed: the peer's challenge is {0} bytes, expected {CHALLENGE_BYTES}"
    )]
    BadChallenge(usize),
    /// A setting of `P_PROTOCOL` differs.
    #[error("incompatible {what}: this node has {ours}, the peer has {peer}")]
    Incompatible {
        /// Which setting.
        what: &'static str,
        /// Our value.
        ours: String,
        /// The peer's value.
        peer: String,
    },
    /// The peer's disk is smaller than what this node exports.
    #[error("the peer's disk size is too small: it offers {peer_sectors} sectors, this node's device has {our_sectors} sectors")]
    PeerTooSmall {
        /// The peer's usable size.
        peer_sectors: u64,
        /// Ours.
        our_sectors: u64,
    },
    /// A packet that has no place in the handshake.
    #[error("protocol error during the handshake: unexpected {got} while {phase}")]
    Unexpected {
        /// The packet's command.
        got: String,
        /// What the machine was waiting for.
        phase: &'static str,
    },
    /// `allow-two-primaries` is not implemented.
    #[error("allow-two-primaries is not implemented by rdbd (dual-primary needs conflict detection); remove it from the net section")]
    TwoPrimariesUnsupported,
}

/// What this node brings to the handshake.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// `cram-hmac-alg` and `shared-secret`, when configured.
    pub auth: Option<(CramHmacAlg, Vec<u8>)>,
    /// Our `P_PROTOCOL`.
    pub protocol: ProtocolParams,
    /// Our `P_SYNC_PARAM89`.
    pub sync: SyncParams,
    /// Our `P_SIZES`.
    pub sizes: Sizes,
    /// Our `P_UUIDS`.
    pub uuids: Uuids,
    /// Our `P_STATE` (conn = WFReportParams).
    pub state: DrbdState,
    /// 64 random bytes for our challenge.
    pub challenge: [u8; CHALLENGE_BYTES],
}

/// What the peer reported; the handshake's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// The agreed protocol version (always 101).
    pub agreed_version: u32,
    /// The feature flags both sides support.
    pub agreed_features: u32,
    /// The peer's `P_PROTOCOL`.
    pub protocol: ProtocolParams,
    /// The peer's `P_SYNC_PARAM89`.
    pub sync: SyncParams,
    /// The peer's `P_SIZES`.
    pub sizes: Sizes,
    /// The peer's `P_UUIDS`.
    pub uuids: Uuids,
    /// The peer's `P_STATE`.
    pub state: DrbdState,
    /// The device size both sides use, in sectors.
    pub agreed_sectors: u64,
}

/// Packets to send, with the header each needs.
pub type Outgoing = Vec<(HeaderKind, Packet)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Features,
    Auth,
    Params,
    Done,
}

/// The handshake machine.
#[derive(Debug)]
pub struct Handshake {
    cfg: HandshakeConfig,
    phase: Phase,
    agreed_features: u32,
    sent_response: bool,
    peer_verified: bool,
    protocol: Option<ProtocolParams>,
    sync: Option<SyncParams>,
    sizes: Option<Sizes>,
    uuids: Option<Uuids>,
}

/// Our `P_CONNECTION_FEATURES`: exactly protocol 101, TRIM.
pub fn our_features() -> ConnectionFeatures {
    ConnectionFeatures {
        protocol_min: PROTOCOL_VERSION,
        feature_flags: FF_TRIM,
        protocol_max: PROTOCOL_VERSION,
    }
}

impl Handshake {
    /// Starts the handshake; the returned packets go out first.
    pub fn start(cfg: HandshakeConfig) -> (Handshake, Outgoing) {
        let hs = Handshake {
            cfg,
            phase: Phase::Features,
            agreed_features: 0,
            sent_response: false,
            peer_verified: false,
            protocol: None,
            sync: None,
            sizes: None,
            uuids: None,
        };
        (
            hs,
            vec![(HeaderKind::H80, Packet::ConnectionFeatures(our_features()))],
        )
    }

    /// Whether the handshake has finished.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Features => "waiting for P_CONNECTION_FEATURES",
            Phase::Auth => "authenticating",
            Phase::Params => "waiting for the peer's parameters",
            Phase::Done => "already connected",
        }
    }

    fn unexpected(&self, p: &Packet) -> HandshakeError {
        HandshakeError::Unexpected {
            got: format!("{:?}", p.command()),
            phase: self.phase_name(),
        }
    }

    fn params(&self) -> Outgoing {
        [
            Packet::Protocol(self.cfg.protocol.clone()),
            Packet::SyncParam89(self.cfg.sync.clone()),
            Packet::Sizes(self.cfg.sizes),
            Packet::Uuids(self.cfg.uuids),
            Packet::State(self.cfg.state),
        ]
        .into_iter()
        .map(|p| (HeaderKind::H100, p))
        .collect()
    }

    /// Feeds one packet from the data socket. Returns the packets to send and, once the
    /// peer's state arrived, the report.
    pub fn on_packet(
        &mut self,
        packet: Packet,
    ) -> Result<(Outgoing, Option<PeerReport>), HandshakeError> {
        let mut out = Vec::new();
        match (self.phase, packet) {
            (Phase::Features, Packet::ConnectionFeatures(peer)) => {
                let peer_max = if peer.protocol_max == 0 {
                    peer.protocol_min
                } else {
                    peer.protocol_max
                };
                if our_features().agree(&peer) != Some(PROTOCOL_VERSION) {
                    return Err(HandshakeError::Dialect {
                        peer_min: peer.protocol_min,
                        peer_max,
                    });
                }
                self.agreed_features = peer.feature_flags & our_features().feature_flags;
                match &self.cfg.auth {
                    Some(_) => {
                        self.phase = Phase::Auth;
                        out.push((
                            HeaderKind::H100,
                            Packet::AuthChallenge(self.cfg.challenge.to_vec()),
                        ));
                    }
                    None => {
                        self.phase = Phase::Params;
                        out.extend(self.params());
                    }
                }
            }
            (Phase::Auth, Packet::AuthChallenge(challenge)) => {
                let Some((alg, secret)) = &self.cfg.auth else {
                    unreachable!("Auth phase without auth")
                };
                if challenge.len() != CHALLENGE_BYTES {
                    return Err(HandshakeError::BadChallenge(challenge.len()));
                }
                out.push((
                    HeaderKind::H100,
                    Packet::AuthResponse(auth_response(*alg, secret, &challenge)),
                ));
                self.sent_response = true;
                if self.peer_verified {
                    self.phase = Phase::Params;
                    out.extend(self.params());
                }
            }
            (Phase::Auth, Packet::AuthResponse(response)) => {
                let Some((alg, secret)) = &self.cfg.auth else {
                    unreachable!("Auth phase without auth")
                };
                if !verify_response(*alg, secret, &self.cfg.challenge, &response) {
                    return Err(HandshakeError::AuthFailed {
                        alg: format!("{alg:?}").to_lowercase(),
                    });
                }
                self.peer_verified = true;
                if self.sent_response {
                    self.phase = Phase::Params;
                    out.extend(self.params());
                }
            }
            (Phase::Auth, other) => {
                let alg = self
                    .cfg
                    .auth
                    .as_ref()
                    .map(|(a, _)| format!("{a:?}").to_lowercase())
                    .unwrap_or_default();
                return Err(HandshakeError::PeerSkippedAuth(
                    alg,
                    format!("{:?}", other.command()),
                ));
            }
            (Phase::Params, Packet::AuthChallenge(_))
            | (Phase::Features, Packet::AuthChallenge(_)) => {
                return Err(HandshakeError::PeerWantsAuth)
            }
            (Phase::Params, Packet::Protocol(p)) => {
                check_protocol(&self.cfg.protocol, &p)?;
                self.protocol = Some(p);
            }
            (Phase::Params, Packet::SyncParam89(s)) => self.sync = Some(s),
            (Phase::Params, Packet::Sizes(s)) => self.sizes = Some(s),
            (Phase::Params, Packet::Uuids(u)) => self.uuids = Some(u),
            (Phase::Params, Packet::State(state)) => {
                let (Some(protocol), Some(sync), Some(sizes), Some(uuids)) = (
                    self.protocol.clone(),
                    self.sync.clone(),
                    self.sizes,
                    self.uuids,
                ) else {
                    return Err(HandshakeError::Unexpected {
                        got: "P_STATE before P_PROTOCOL/P_SYNC_PARAM89/P_SIZES/P_UUIDS".into(),
                        phase: self.phase_name(),
                    });
                };
                let agreed_sectors = agree_size(&self.cfg.sizes, &sizes)?;
                self.phase = Phase::Done;
                let report = PeerReport {
                    agreed_version: PROTOCOL_VERSION,
                    agreed_features: self.agreed_features,
                    protocol,
                    sync,
                    sizes,
                    uuids,
                    state,
                    agreed_sectors,
                };
                return Ok((out, Some(report)));
            }
            (_, other) => return Err(self.unexpected(&other)),
        }
        Ok((out, None))
    }
}

/// After-sb policies are stated from the sender's side: `discard-local` on one node is
/// `discard-remote` on the other (D84 `convert_after_sb`).
pub fn mirror_after_sb(p: AfterSbPolicy) -> AfterSbPolicy {
    match p {
        AfterSbPolicy::DiscardLocal => AfterSbPolicy::DiscardRemote,
        AfterSbPolicy::DiscardRemote => AfterSbPolicy::DiscardLocal,
        other => other,
    }
}

/// The checks the kernel makes on a received `P_PROTOCOL` (D84 `receive_protocol`).
pub fn check_protocol(ours: &ProtocolParams, peer: &ProtocolParams) -> Result<(), HandshakeError> {
    let differ = |what: &'static str, o: String, p: String| {
        Err(HandshakeError::Incompatible {
            what,
            ours: o,
            peer: p,
        })
    };
    if ours.protocol != peer.protocol {
        return differ(
            "replication protocol",
            format!("protocol {}", ours.protocol),
            format!("protocol {}", peer.protocol),
        );
    }
    for (what, o, p) in [
        ("after-sb-0pri", ours.after_sb_0p, peer.after_sb_0p),
        ("after-sb-1pri", ours.after_sb_1p, peer.after_sb_1p),
        ("after-sb-2pri", ours.after_sb_2p, peer.after_sb_2p),
    ] {
        if mirror_after_sb(p) != o {
            return differ(what, o.name().to_string(), p.name().to_string());
        }
    }
    if ours.conn_flags & peer.conn_flags & CF_DISCARD_MY_DATA != 0 {
        return differ(
            "discard-my-data settings",
            "discard-my-data".into(),
            "discard-my-data".into(),
        );
    }
    if ours.two_primaries != peer.two_primaries {
        return differ(
            "allow-two-primaries setting",
            ours.two_primaries.to_string(),
            peer.two_primaries.to_string(),
        );
    }
    if ours.integrity_alg != peer.integrity_alg {
        let show = |s: &str| {
            if s.is_empty() {
                "none".to_string()
            } else {
                s.to_string()
            }
        };
        return differ(
            "data-integrity-alg",
            show(&ours.integrity_alg),
            show(&peer.integrity_alg),
        );
    }
    Ok(())
}

/// The peer's usable size in sectors: its user size when set, else its backing size.
pub fn usable_sectors(s: &Sizes) -> u64 {
    if s.user_sectors != 0 {
        s.user_sectors.min(s.backing_sectors)
    } else {
        s.backing_sectors
    }
}

/// The agreed size is the smaller one; rdbd's exported size cannot shrink while it is up,
/// so a peer smaller than this node is refused.
pub fn agree_size(ours: &Sizes, peer: &Sizes) -> Result<u64, HandshakeError> {
    let our_sectors = usable_sectors(ours);
    let peer_sectors = usable_sectors(peer);
    if peer_sectors < our_sectors {
        return Err(HandshakeError::PeerTooSmall {
            peer_sectors,
            our_sectors,
        });
    }
    Ok(our_sectors.min(peer_sectors))
}

/// Our protocol parameters from the settings.
pub fn protocol_params(
    protocol: Protocol,
    after_sb: [&str; 3],
    two_primaries: bool,
    integrity_alg: Option<&str>,
    discard_my_data: bool,
) -> ProtocolParams {
    let p = |s: &str| AfterSbPolicy::from_name(s).unwrap_or_default();
    ProtocolParams {
        protocol,
        after_sb_0p: p(after_sb[0]),
        after_sb_1p: p(after_sb[1]),
        after_sb_2p: p(after_sb[2]),
        conn_flags: if discard_my_data {
            CF_DISCARD_MY_DATA
        } else {
            0
        },
        two_primaries,
        integrity_alg: integrity_alg.unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_types::{ConnState, DiskState, Role};

    fn cfg(auth: Option<&str>, protocol: Protocol, sectors: u64) -> HandshakeConfig {
        HandshakeConfig {
            auth: auth.map(|s| (CramHmacAlg::Sha256, s.as_bytes().to_vec())),
            protocol: protocol_params(protocol, ["disconnect"; 3], false, None, false),
            sync: SyncParams {
                resync_rate_kib: 250,
                verify_alg: String::new(),
                csums_alg: String::new(),
                c_plan_ahead_ds: 20,
                c_delay_target_ds: 10,
                c_fill_target_sectors: 100,
                c_max_rate_kib: 102400,
            },
            sizes: Sizes {
                backing_sectors: sectors,
                user_sectors: 0,
                current_sectors: 0,
                max_bio_size_bytes: 1 << 20,
                queue_order_type: 0,
                dds_flags: 0,
                queue_limits: None,
            },
            uuids: Uuids {
                current: 4,
                bitmap: 0,
                history: [0, 0],
                dirty_bits: 0,
                flags: 0,
            },
            state: DrbdState {
                role: Role::Secondary,
                peer: Role::Unknown,
                conn: ConnState::WFReportParams,
                disk: DiskState::Inconsistent,
                pdsk: DiskState::DUnknown,
                susp: false,
                aftr_isp: false,
                peer_isp: false,
                user_isp: false,
                susp_nod: false,
                susp_fen: false,
            },
            challenge: [7; CHALLENGE_BYTES],
        }
    }

    /// Runs two machines against each other until both finish or one fails.
    fn run(
        a: HandshakeConfig,
        b: HandshakeConfig,
    ) -> (
        Result<PeerReport, HandshakeError>,
        Result<PeerReport, HandshakeError>,
    ) {
        let (mut ha, mut qa) = Handshake::start(a);
        let (mut hb, mut qb) = Handshake::start(b);
        let (mut ra, mut rb) = (None, None);
        for _ in 0..32 {
            let to_b = std::mem::take(&mut qa);
            let to_a = std::mem::take(&mut qb);
            for (_, p) in to_b {
                if rb.is_some() {
                    break;
                }
                match hb.on_packet(p) {
                    Ok((out, done)) => {
                        qb.extend(out);
                        if let Some(d) = done {
                            rb = Some(Ok(d));
                        }
                    }
                    Err(e) => rb = Some(Err(e)),
                }
            }
            for (_, p) in to_a {
                if ra.is_some() {
                    break;
                }
                match ha.on_packet(p) {
                    Ok((out, done)) => {
                        qa.extend(out);
                        if let Some(d) = done {
                            ra = Some(Ok(d));
                        }
                    }
                    Err(e) => ra = Some(Err(e)),
                }
            }
            if ra.is_some() && rb.is_some() {
                break;
            }
        }
        (ra.expect("a finished"), rb.expect("b finished"))
    }

    #[test]
    fn matching_nodes_agree_with_and_without_auth() {
        let (a, b) = run(cfg(None, Protocol::C, 1000), cfg(None, Protocol::C, 2000));
        assert_eq!(a.unwrap().agreed_sectors, 1000);
        assert!(matches!(
            b,
            Err(HandshakeError::PeerTooSmall {
                peer_sectors: 1000,
                our_sectors: 2000
            })
        ));
        let (a, b) = run(
            cfg(Some("s3cret"), Protocol::B, 1000),
            cfg(Some("s3cret"), Protocol::B, 1000),
        );
        assert_eq!(a.unwrap().agreed_version, 101);
        assert_eq!(b.unwrap().protocol.protocol, Protocol::B);
    }

    #[test]
    fn wrong_secret_and_protocol_mismatch_are_named() {
        let (a, _) = run(
            cfg(Some("one"), Protocol::C, 8),
            cfg(Some("two"), Protocol::C, 8),
        );
        assert!(matches!(a, Err(HandshakeError::AuthFailed { .. })), "{a:?}");
        let (a, _) = run(cfg(None, Protocol::A, 8), cfg(None, Protocol::C, 8));
        let msg = a.unwrap_err().to_string();
        assert_eq!(
            msg,
            "incompatible replication protocol: this node has protocol A, the peer has protocol C"
        );
        let (a, b) = run(cfg(Some("x"), Protocol::C, 8), cfg(None, Protocol::C, 8));
        assert!(
            matches!(a, Err(HandshakeError::PeerSkippedAuth(..))),
            "{a:?}"
        );
        assert!(matches!(b, Err(HandshakeError::PeerWantsAuth)), "{b:?}");
    }

    #[test]
    fn after_sb_is_mirrored_and_other_dialects_refused() {
        let mut a = cfg(None, Protocol::C, 8);
        a.protocol.after_sb_0p = AfterSbPolicy::DiscardLocal;
        let mut b = cfg(None, Protocol::C, 8);
        b.protocol.after_sb_0p = AfterSbPolicy::DiscardRemote;
        let (ra, rb) = run(a, b);
        assert!(ra.is_ok() && rb.is_ok());
        let (mut h, _) = Handshake::start(cfg(None, Protocol::C, 8));
        let err = h
            .on_packet(Packet::ConnectionFeatures(ConnectionFeatures {
                protocol_min: 86,
                feature_flags: 0,
                protocol_max: 96,
            }))
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Dialect {
                peer_min: 86,
                peer_max: 96
            }
        );
    }
}
