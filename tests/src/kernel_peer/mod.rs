//! Tests against a real kernel DRBD 8.4.11 peer booted under qemu (`tests/kernel-peer/`).
//!
//! - [`vm`]: the VM ([`vm::KernelPeerVm`]): boot, console, control words, and a command channel
//!   that runs shell commands in the guest one at a time ([`vm::KernelPeerVm::guest`]);
//! - [`node`]: an rdbd node whose peer is the guest, its configuration rewritable per protocol
//!   and `cram-hmac-alg` ([`node::RdbdNode`], [`node::Auth`]);
//! - [`pair`]: the VM and rdbd as a pair ([`pair::KernelPair`]) in one [`pair::Direction`], the
//!   guest's shell functions ([`pair::GUEST_LIB`]) and the set-up every scenario starts from
//!   (both up, the initial full sync);
//! - [`proc_drbd`]: the minor line of `/proc/drbd` (ours and the kernel's) and the check that two
//!   sides mirror each other.
//!
//! The guest sees its data disk as `/dev/vda`, its own address as 10.0.2.15 (DRBD port 7789,
//! forwarded from the host's `127.0.0.1:fwd_port`), and the host's loopback as 10.0.2.2.

pub mod node;
pub mod pair;
pub mod proc_drbd;
pub mod vm;

/// 64 MiB with internal meta-data: 16374 blocks of 4 KiB of data (kernel fact).
pub const DATA_BLOCKS: u64 = 16_374;
