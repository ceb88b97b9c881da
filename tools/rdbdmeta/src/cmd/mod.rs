//! One module per group of commands; shared opening helpers.

pub mod apply_al;
pub mod create;
pub mod dump;
pub mod gi;
pub mod restore;

use rdbd_metadata::device::{read_valid_superblock, RawDevice};
use rdbd_metadata::{Layout, LayoutKind, MetaDataDevice, MetaDiskKind, OpenOptions, Superblock};

use crate::args::{Args, Command};
use crate::fail::{fail, Failure};

/// Runs the command. Commands that write take the device's claim first, so
/// nothing is changed under a resource a running rdbd has attached (drbdmeta
/// likewise refuses a configured device, exit 20).
pub fn run(args: &Args) -> Result<(), Failure> {
    let writes = matches!(
        args.command,
        Command::CreateMd
            | Command::RestoreMd
            | Command::WipeMd
            | Command::ApplyAl
            | Command::SetGi
            | Command::Outdate
            | Command::Invalidate
    );
    let _claim = if writes && args.device.exists() {
        Some(rdbd_metadata::claim::claim(&args.device).map_err(|e| fail(20, e.to_string()))?)
    } else {
        None
    };
    match args.command {
        Command::CreateMd => create::create_md(args),
        Command::DumpMd => dump::dump_md(args),
        Command::RestoreMd => restore::restore_md(args, false),
        Command::VerifyDump => restore::restore_md(args, true),
        Command::WipeMd => gi::wipe_md(args),
        Command::ApplyAl => apply_al::apply_al(args),
        Command::ShowGi => gi::show_gi(args),
        Command::GetGi => gi::get_gi(args),
        Command::SetGi => gi::set_gi(args),
        Command::Dstate => gi::dstate(args),
        Command::Outdate => gi::outdate(args),
        Command::Invalidate => gi::invalidate(args),
        Command::CheckResize => gi::check_resize(args),
    }
}

/// The device opened raw (exit 20 if it cannot be opened, like drbdmeta).
pub fn open_raw(args: &Args, writable: bool) -> Result<RawDevice, Failure> {
    RawDevice::open(&args.device, writable).map_err(|e| fail(20, e.to_string()))
}

/// Reads the superblock without modifying anything.
pub fn read_valid(args: &Args) -> Result<(RawDevice, Superblock, Layout), Failure> {
    let dev = open_raw(args, false)?;
    let (sb, layout) = read_valid_superblock(&dev, args.kind).map_err(|e| no_valid(args, e))?;
    Ok((dev, sb, layout))
}

/// The device as a [`MetaDataDevice`] (the data device is the same path; for external
/// meta-data its size is not known to the tool).
pub fn open_md(args: &Args, writable: bool) -> Result<MetaDataDevice, Failure> {
    open_raw(args, writable)?;
    let kind = match args.kind {
        LayoutKind::Internal => MetaDiskKind::Internal,
        LayoutKind::FlexExternal => MetaDiskKind::FlexExternal {
            meta_path: args.device.clone(),
        },
        LayoutKind::Indexed(index) => MetaDiskKind::Indexed {
            meta_path: args.device.clone(),
            index,
        },
    };
    MetaDataDevice::open(
        &args.device,
        &kind,
        OpenOptions {
            writable,
            md_flushes: true,
        },
    )
    .map_err(|e| no_valid(args, e))
}

/// "No valid meta data" failure naming the reason.
pub fn no_valid(args: &Args, e: rdbd_metadata::MetaError) -> Failure {
    fail(
        1,
        format!("{}: no valid meta data found: {e}", args.device.display()),
    )
}

/// An I/O or format error during a command.
pub fn io_fail(args: &Args, e: rdbd_metadata::MetaError) -> Failure {
    fail(1, format!("{}: {e}", args.device.display()))
}
