//! Harness for rdbd's integration tests: real `rdbd`/`rdbdadm`/`rdbdmeta` processes,
//! real NBD clients and real crashes.
//!
//! - [`bins`]: where the workspace's binaries are (built by `cargo build --bins`).
//! - [`node`]: one rdbd node in a temporary directory, with its own config, run
//!   directory and backing files, driven through `rdbdadm`.
//! - [`pair`]: two nodes replicating `r0`, on loopback or in two network namespaces.
//! - [`kernel_peer`]: a real kernel DRBD 8.4.11 peer in qemu and an rdbd node paired with it.
//! - [`ha`]: helpers of the HA tests (process reapers, rdbd-ha configuration, the OCF
//!   agent run as Pacemaker runs it).
//! - [`resync_speed`]: a running resync's speed from the SyncTarget's status file.
//! - [`split_brain`]: a split brain made on purpose (both Primary while apart, both
//!   write) and a handler script that records its calls.
//! - [`tools`]: running external tools (nbdinfo, nbdcopy, qemu-io, fio, ...) with
//!   their output captured and failures reported with that output.

pub mod acked_writer;
pub mod bins;
pub mod faulty;
pub mod fixture;
pub mod fuse;
pub mod ha;
pub mod kernel_peer;
pub mod netns;
pub mod node;
pub mod pair;
pub mod resync_speed;
pub mod split_brain;
pub mod tools;
