//! dump-md: drbdmeta's text document (refuses unclean meta-data unless `--force`).

use std::io::Write;

use rdbd_metadata::device::RawDevice;
use rdbd_metadata::dump::{write_dump, DumpDoc, DumpPreamble};
use rdbd_metadata::layout::bitmap_bytes_for;
use rdbd_metadata::{Layout, Superblock};

use super::{io_fail, read_valid};
use crate::args::Args;
use crate::fail::{fail, Failure};
use crate::text::dump_banner;

/// `la_size_sect` clipped to the layout, printing drbdmeta's note when it was too big.
pub fn clip_la(sb: &Superblock, layout: &Layout) -> u64 {
    let max = layout.max_data_sectors();
    if sb.la_size_sect > max {
        println!(
            "# la-size-sect was too big ({}), truncated ({max})!",
            sb.la_size_sect
        );
        max
    } else {
        sb.la_size_sect
    }
}

/// Reads the bitmap words drbdmeta shows: `bm_bytes(la_size_sect)` bytes from the bitmap area.
pub fn read_bitmap_words(
    dev: &RawDevice,
    layout: &Layout,
    la_size_sect: u64,
) -> rdbd_metadata::Result<Vec<u64>> {
    let bytes = bitmap_bytes_for(la_size_sect);
    let readable = bytes
        .min(layout.bitmap_area_bytes())
        .min(dev.size_bytes().saturating_sub(layout.bm_offset_bytes()));
    let mut raw = dev.read_vec(readable as usize, layout.bm_offset_bytes())?;
    raw.resize(bytes as usize, 0);
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Runs dump-md.
pub fn dump_md(args: &Args) -> Result<(), Failure> {
    let (dev, sb, layout) = read_valid(args)?;
    if sb.is_unclean() {
        eprintln!("Found meta data is \"unclean\", please apply-al first");
        if !args.force {
            return Err(fail(
                1,
                format!(
                    "{}: meta-data is unclean (run apply-al)",
                    args.device.display()
                ),
            ));
        }
    }
    let la = clip_la(&sb, &layout);
    let words = read_bitmap_words(&dev, &layout, la).map_err(|e| io_fail(args, e))?;
    let doc = DumpDoc {
        uuids: sb.uuids,
        flags: sb.flags.0,
        la_size_sect: la,
        bm_bytes_per_bit: sb.bm_bytes_per_bit,
        device_uuid: sb.device_uuid,
        la_peer_max_bio_size: sb.la_peer_max_bio_size,
        al_stripes: sb.al.stripes(),
        al_stripe_size_4k: sb.al.stripe_size_4k(),
        bitmap_words_total: words.len() as u64,
        bitmap_words: words,
    };
    let pre = DumpPreamble {
        banner: dump_banner(&args.argv),
        unclean: sb.is_unclean(),
        md_size_sect: sb.md_size_sect,
        md_offset_bytes: layout.md_offset_bytes,
        al_offset_bytes: layout.al_offset_bytes(),
        bm_offset_bytes: layout.bm_offset_bytes(),
        al_nr_extents: sb.al_nr_extents,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_dump(&mut out, &pre, &doc)
        .and_then(|_| out.flush())
        .map_err(|e| fail(1, format!("writing dump: {e}")))?;
    Ok(())
}
