//! Generation identifiers and flags: get-gi, show-gi, set-gi, dstate, outdate, invalidate;
//! plus wipe-md and check-resize.

use rdbd_metadata::{MdFlags, Superblock};

use super::{io_fail, open_md, read_valid};
use crate::args::Args;
use crate::fail::{confirmed, fail, Failure};
use crate::text;

fn ignore_extra(args: &Args, allowed: usize) {
    if args.command_args.len() > allowed {
        eprintln!("Ignoring additional arguments");
    }
}

/// get-gi.
pub fn get_gi(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let (_, sb, _) = read_valid(args)?;
    println!("{}", text::gi_line(&sb));
    Ok(())
}

/// show-gi.
pub fn show_gi(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let (_, sb, _) = read_valid(args)?;
    print!("{}", text::show_gi(&sb));
    Ok(())
}

/// dstate.
pub fn dstate(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let (_, sb, _) = read_valid(args)?;
    println!("{}", text::dstate(&sb));
    Ok(())
}

/// Applies a GI string `CUR:BM:H1:H2:c:w:p:n:fs:po:cp`; empty fields keep the old value.
pub fn apply_gi(sb: &mut Superblock, gi: &str) -> Result<(), Failure> {
    let mut fields = gi.split(':');
    let [h0, h1] = &mut sb.uuids.history;
    let uuid_slots: [&mut u64; 4] = [&mut sb.uuids.current, &mut sb.uuids.bitmap, h0, h1];
    for slot in uuid_slots {
        let Some(f) = fields.next() else {
            return Ok(());
        };
        if !f.is_empty() {
            let hex = f
                .strip_prefix("0x")
                .or_else(|| f.strip_prefix("0X"))
                .unwrap_or(f);
            *slot = u64::from_str_radix(hex, 16)
                .map_err(|_| fail(10, format!("'{f}' is not a number.")))?;
        }
    }
    let bits = [
        MdFlags::CONSISTENT,
        MdFlags::WAS_UP_TO_DATE,
        MdFlags::PRIMARY_IND,
        MdFlags::CONNECTED_IND,
        MdFlags::FULL_SYNC,
        MdFlags::PEER_OUT_DATED,
        MdFlags::CRASHED_PRIMARY,
    ];
    for mask in bits {
        let Some(f) = fields.next() else {
            return Ok(());
        };
        match f {
            "" => {}
            "0" => sb.flags.set(mask, false),
            "1" => sb.flags.set(mask, true),
            _ => return Err(fail(10, format!("'{f}' is not 0 or 1."))),
        }
    }
    Ok(())
}

/// set-gi GI.
pub fn set_gi(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 1);
    let gi = args
        .command_args
        .first()
        .ok_or_else(|| fail(10, "Required Argument missing".into()))?;
    let mut md = open_md(args, true)?;
    let mut new = *md.superblock();
    apply_gi(&mut new, gi)?;
    println!("previously {}", text::gi_line(md.superblock()));
    println!("set GI to  {}", text::gi_line(&new));
    if !confirmed("Write new GI to disk?", args.force) {
        println!("Operation canceled.");
        return Ok(());
    }
    md.write_superblock(&new).map_err(|e| io_fail(args, e))
}

/// outdate: clears WAS_UP_TO_DATE; refuses inconsistent data (exit 5).
pub fn outdate(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let mut md = open_md(args, true)?;
    if !md.superblock().flags.has(MdFlags::CONSISTENT) {
        return Err(fail(5, "Device is inconsistent.".into()));
    }
    md.update_superblock(|sb| sb.flags.set(MdFlags::WAS_UP_TO_DATE, false))
        .map_err(|e| io_fail(args, e))
}

/// invalidate: inconsistent, not up to date, full sync needed.
pub fn invalidate(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let mut md = open_md(args, true)?;
    md.update_superblock(|sb| {
        sb.flags
            .set(MdFlags::CONSISTENT | MdFlags::WAS_UP_TO_DATE, false);
        sb.flags.set(MdFlags::FULL_SYNC, true);
    })
    .map_err(|e| io_fail(args, e))
}

/// wipe-md.
pub fn wipe_md(args: &Args) -> Result<(), Failure> {
    ignore_extra(args, 0);
    let md = match open_md(args, true) {
        Ok(md) => md,
        Err(e) => {
            eprintln!(
                "There appears to be no drbd meta data to wipe out? ({})",
                e.msg
            );
            return Ok(());
        }
    };
    if !confirmed(
        "Do you really want to wipe out the DRBD meta data?",
        args.force,
    ) {
        println!("Operation cancelled.");
        return Err(fail(1, format!("{}: not wiped", args.device.display())));
    }
    println!("Wiping meta data...");
    md.wipe().map_err(|e| io_fail(args, e))?;
    println!("DRBD meta data block successfully wiped out.");
    Ok(())
}

/// check-resize: succeeds if valid meta-data is where the current device size puts it.
/// (drbdmeta would also move internal meta-data found at a last-known size it keeps in
/// /var/lib/drbd; rdbdmeta keeps no such side files.)
pub fn check_resize(args: &Args) -> Result<(), Failure> {
    match read_valid(args) {
        Ok(_) => Ok(()),
        Err(e) => {
            if args.kind != rdbd_metadata::LayoutKind::Internal {
                eprintln!("Operation only supported for >= v8 internal meta data");
            } else {
                eprintln!("no suitable meta data found :(");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_metadata::{AlStripes, Layout, LayoutKind};

    fn sb() -> Superblock {
        Superblock::new_created(
            &Layout::compute(LayoutKind::Internal, 1 << 27, AlStripes::default()).unwrap(),
        )
    }

    #[test]
    fn partial_gi_keeps_the_rest() {
        let mut s = sb();
        apply_gi(&mut s, "::ABCDEF:0x12:1:1").unwrap();
        assert_eq!(s.uuids.current, 4);
        assert_eq!(s.uuids.history, [0xABCDEF, 0x12]);
        assert!(s
            .flags
            .has(MdFlags::CONSISTENT | MdFlags::WAS_UP_TO_DATE | MdFlags::AL_CLEAN));
        assert!(apply_gi(&mut s, "1:2:3:4:2").is_err());
        assert!(apply_gi(&mut s, "xyz").is_err());
    }
}
