//! restore-md FILE and verify-dump FILE: parse a dump-md document; restore writes the bitmap
//! and a superblock whose layout is computed for this device and the dump's AL striping.

use rdbd_metadata::device::{probe, read_valid_superblock, ExistingMd};
use rdbd_metadata::dump::parse_dump;
use rdbd_metadata::layout::bitmap_bytes_for;
use rdbd_metadata::{AlStripes, Layout, MdFlags, MdMagic, Superblock};

use super::{io_fail, open_raw};
use crate::args::Args;
use crate::cmd::create::confirm_overwrite;
use crate::fail::{confirmed, fail, Failure};

/// Largest dump file read (a dump of a 1 PiB bitmap is far smaller thanks to run folding).
const MAX_DUMP_BYTES: u64 = 1 << 30;

fn read_text(args: &Args) -> Result<String, Failure> {
    let file = args
        .command_args
        .first()
        .ok_or_else(|| fail(10, "Required Argument missing".into()))?;
    let len = std::fs::metadata(file)
        .map_err(|e| fail(20, format!("open of '{file}' failed: {e}")))?
        .len();
    if len > MAX_DUMP_BYTES {
        return Err(fail(
            10,
            format!("'{file}' is {len} bytes, larger than the {MAX_DUMP_BYTES} bytes accepted"),
        ));
    }
    std::fs::read_to_string(file).map_err(|e| fail(20, format!("reading '{file}' failed: {e}")))
}

/// Runs restore-md (or, with `parse_only`, verify-dump).
pub fn restore_md(args: &Args, parse_only: bool) -> Result<(), Failure> {
    let text = read_text(args)?;
    if parse_only {
        parse_dump(&text, |_| 0).map_err(|e| fail(10, e.to_string()))?;
        println!("input file parsed ok");
        return Ok(());
    }
    let dev = open_raw(args, true)?;
    let existing = read_valid_superblock(&dev, args.kind).is_ok();
    if existing && !confirmed("Valid meta-data in place, overwrite?", args.force) {
        println!("Operation canceled.");
        return Err(fail(
            1,
            format!("{}: not overwritten", args.device.display()),
        ));
    }
    let size = dev.size_bytes();
    let kind = args.kind;
    let override_al = args.al_stripes.is_some() || args.al_stripe_size_kib.is_some();
    let layout_for = |stripes: u32, size_4k: u32| -> rdbd_metadata::Result<Layout> {
        let al = if override_al {
            AlStripes::from_kib(
                args.al_stripes.unwrap_or(1),
                args.al_stripe_size_kib.unwrap_or(32),
            )?
        } else {
            AlStripes::new(stripes, size_4k)?
        };
        Layout::compute(kind, size, al)
    };
    let limit = |doc: &rdbd_metadata::dump::DumpDoc| match layout_for(
        doc.al_stripes,
        doc.al_stripe_size_4k,
    ) {
        Ok(l) => bitmap_bytes_for(doc.la_size_sect.min(l.max_data_sectors())) / 8,
        Err(_) => 0,
    };
    let doc = parse_dump(&text, limit).map_err(|e| fail(10, e.to_string()))?;
    let layout = layout_for(doc.al_stripes, doc.al_stripe_size_4k).map_err(|e| io_fail(args, e))?;
    eprintln!("reinitializing");
    if override_al {
        eprintln!("override activity log striping from commandline");
    }
    let mut found = probe(&dev, layout.md_offset_bytes).map_err(|e| io_fail(args, e))?;
    // Meta-data in place was confirmed above; what is left is data at the device start.
    found.existing_md = ExistingMd::None;
    confirm_overwrite(args, &layout, &found)?;

    let max = layout.max_data_sectors();
    let la = if doc.la_size_sect > max {
        println!(
            "# la-size-sect was too big ({}), truncated ({max})!",
            doc.la_size_sect
        );
        max
    } else {
        doc.la_size_sect
    };
    let limit_words = bitmap_bytes_for(la) / 8;
    if doc.bitmap_words_total > limit_words {
        eprintln!("Bitmap info too large, truncated!");
    }
    let mut bytes: Vec<u8> = doc
        .bitmap_words
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    bytes.truncate((limit_words * 8) as usize);
    let padded = bytes
        .len()
        .next_multiple_of(512)
        .min((limit_words * 8) as usize);
    bytes.resize(padded, 0);
    if !bytes.is_empty() {
        dev.write_at(&bytes, layout.bm_offset_bytes())
            .map_err(|e| io_fail(args, e))?;
    }
    let mut sb = Superblock::new_created(&layout);
    sb.uuids = doc.uuids;
    sb.flags = MdFlags(doc.flags);
    sb.magic = MdMagic::Clean;
    sb.la_size_sect = la;
    sb.device_uuid = doc.device_uuid;
    sb.la_peer_max_bio_size = doc.la_peer_max_bio_size;
    dev.write_at(&sb.encode(), layout.md_offset_bytes)
        .map_err(|e| io_fail(args, e))?;
    dev.flush().map_err(|e| io_fail(args, e))?;
    println!("Successfully restored meta data");
    Ok(())
}
