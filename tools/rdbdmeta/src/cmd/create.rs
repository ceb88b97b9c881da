//! create-md: refuses (unless confirmed or `--force`) to overwrite existing meta-data, a file
//! system or other data, then writes an initialized AL, a zeroed bitmap and a new superblock.

use rdbd_metadata::device::{probe, ExistingMd, ProbeResult};
use rdbd_metadata::{AlStripes, Layout, LayoutKind, MetaDataDevice, MetaDiskKind, OpenOptions};

use super::{io_fail, open_raw};
use crate::args::Args;
use crate::fail::{confirmed, fail, Failure};
use crate::text::ppsize;

/// The AL geometry from `--al-stripes` / `--al-stripe-size-kB` (defaults 1 × 32 KiB).
pub fn al_from_options(args: &Args) -> Result<AlStripes, Failure> {
    AlStripes::from_kib(
        args.al_stripes.unwrap_or(1),
        args.al_stripe_size_kib.unwrap_or(32),
    )
    .map_err(|e| fail(10, e.to_string()))
}

/// Describes what was found and asks; `Err` if the user declines.
pub fn confirm_overwrite(args: &Args, layout: &Layout, found: &ProbeResult) -> Result<(), Failure> {
    if !found.needs_confirmation() {
        return Ok(());
    }
    match &found.existing_md {
        ExistingMd::V08(_) => eprintln!(
            "There appears to be a v08 {} meta data block\nalready in place on {} at byte offset {}",
            layout.kind,
            args.device.display(),
            layout.md_offset_bytes
        ),
        ExistingMd::Other(v) => eprintln!(
            "Valid {v} meta-data found on {} at byte offset {}",
            args.device.display(),
            layout.md_offset_bytes
        ),
        ExistingMd::None => {}
    }
    if let Some(fs) = found.fs {
        println!("md_offset {}", layout.md_offset_bytes);
        println!("al_offset {}", layout.al_offset_bytes());
        println!("bm_offset {}", layout.bm_offset_bytes());
        println!("\nFound {}", fs.name());
        println!("\n ==> This might destroy existing data! <==");
    } else if found.head_nonzero && found.existing_md == ExistingMd::None {
        println!("\n ==> This might destroy existing data! <==");
    }
    if !confirmed("Do you want to proceed?", args.force) {
        println!("Operation canceled.");
        return Err(fail(
            1,
            format!("{}: not overwritten", args.device.display()),
        ));
    }
    Ok(())
}

/// Runs create-md.
pub fn create_md(args: &Args) -> Result<(), Failure> {
    if !args.command_args.is_empty() {
        eprintln!("Ignoring additional arguments");
    }
    let al = al_from_options(args)?;
    let dev = open_raw(args, true)?;
    let layout = Layout::compute(args.kind, dev.size_bytes(), al)
        .map_err(|e| fail(10, format!("{}: {e}", args.device.display())))?;
    let found = probe(&dev, layout.md_offset_bytes).map_err(|e| io_fail(args, e))?;
    drop(dev);
    confirm_overwrite(args, &layout, &found)?;
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
    println!("initializing activity log");
    let mut md = MetaDataDevice::create(&args.device, &kind, al, OpenOptions::default())
        .map_err(|e| io_fail(args, e))?;
    eprintln!(
        "initializing bitmap ({}) to all zero",
        ppsize(md.create_bitmap_bytes() >> 10)
    );
    println!("Writing meta data...");
    if let Some(b) = args.peer_max_bio_size {
        md.update_superblock(|sb| sb.la_peer_max_bio_size = b)
            .map_err(|e| io_fail(args, e))?;
    }
    println!("New drbd meta data block successfully created.");
    Ok(())
}
