//! apply-al: replay the AL into the bitmap if the node was primary, re-initialize the AL and
//! mark the meta-data clean; messages as drbdmeta prints them.

use rdbd_metadata::MetaError;

use super::{io_fail, open_md};
use crate::args::Args;
use crate::fail::{fail, Failure};
use crate::text::ppsize;

/// Runs apply-al.
pub fn apply_al(args: &Args) -> Result<(), Failure> {
    if !args.command_args.is_empty() {
        eprintln!("Ignoring additional arguments");
    }
    let mut md = open_md(args, true)?;
    let report = match md.apply_al() {
        Ok(r) => r,
        Err(e @ MetaError::AlNoData) => {
            return Err(fail(1, format!("{}: {e}", args.device.display())))
        }
        Err(e @ MetaError::AlNoValidUpdate { .. }) => {
            return Err(fail(2, format!("{}: {e}", args.device.display())))
        }
        Err(e) => return Err(io_fail(args, e)),
    };
    match &report.replay {
        Err(e) => {
            eprintln!("{e}");
            eprintln!("Error ignored, no need to apply the AL");
        }
        Ok(o) => {
            if o.corrupt_blocks > 0 && o.valid_blocks > 0 {
                eprintln!("{} corrupt AL transactions found", o.corrupt_blocks);
            }
            if o.skipped_slots > 0 {
                eprintln!(
                    "{} AL slot numbers out of range were skipped",
                    o.skipped_slots
                );
            }
        }
    }
    for e in &report.skipped_extents {
        eprintln!("extent {e} beyond end of bitmap!");
    }
    if report.applied {
        eprintln!(
            "Marked additional {} as out-of-sync based on AL.",
            ppsize(report.additional_bits * 4)
        );
    } else if matches!(&report.replay, Ok(o) if o.update_transactions > 0 && o.hot_extents.is_empty())
        && md
            .superblock()
            .flags
            .has(rdbd_metadata::MdFlags::PRIMARY_IND)
    {
        eprintln!("Nothing to do.");
    }
    Ok(())
}
