//! drbdmeta's text helpers: `ppsize`, the GI line and its pretty form, the dump banner.

use std::time::{SystemTime, UNIX_EPOCH};

use rdbd_metadata::{MdFlags, Superblock};

/// Size in KiB as drbdmeta/drbdsetup print it ("4 KB", "128 MB").
pub fn ppsize(mut kib: u64) -> String {
    const UNITS: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    let mut base = 0;
    while kib >= 10000 && base < UNITS.len() - 1 {
        kib = (kib >> 10) + ((kib >> 9) & 1);
        base += 1;
    }
    format!("{} {}B", kib as u32, UNITS[base])
}

fn bit(flags: MdFlags, mask: u32) -> u8 {
    u8::from(flags.has(mask))
}

/// `get-gi` output line (without newline).
pub fn gi_line(sb: &Superblock) -> String {
    let u = &sb.uuids;
    let f = sb.flags;
    format!(
        "{:016X}:{:016X}:{:016X}:{:016X}:{}:{}:{}:{}:{}:{}:{}",
        u.current,
        u.bitmap,
        u.history[0],
        u.history[1],
        bit(f, MdFlags::CONSISTENT),
        bit(f, MdFlags::WAS_UP_TO_DATE),
        bit(f, MdFlags::PRIMARY_IND),
        bit(f, MdFlags::CONNECTED_IND),
        bit(f, MdFlags::FULL_SYNC),
        bit(f, MdFlags::PEER_OUT_DATED),
        bit(f, MdFlags::CRASHED_PRIMARY),
    )
}

/// `show-gi` output.
pub fn show_gi(sb: &Superblock) -> String {
    let f = sb.flags;
    let mut s = String::from(
        "\n       +--<  Current data generation UUID  >-\n\
         \x20      |               +--<  Bitmap's base data generation UUID  >-\n\
         \x20      |               |                 +--<  younger history UUID  >-\n\
         \x20      |               |                 |         +-<  older history  >-\n\
         \x20      V               V                 V         V\n",
    );
    s += &gi_line(sb);
    s += "\n";
    s += "                                                                    ^ ^ ^ ^ ^ ^ ^\n\
          \x20                                     -<  Data consistency flag  >--+ | | | | | |\n\
          \x20                            -<  Data was/is currently up-to-date  >--+ | | | | |\n\
          \x20                                 -<  Node was/is currently primary  >--+ | | | |\n\
          \x20                                 -<  Node was/is currently connected  >--+ | | |\n\
          \x20        -<  Node was in the progress of setting all bits in the bitmap  >--+ | |\n\
          \x20                       -<  The peer's disk was out-dated or inconsistent  >--+ |\n\
          \x20     -<  This node was a crashed primary, and has not seen its peer since   >--+\n\n";
    let disk = if f.has(MdFlags::CONSISTENT) {
        if f.has(MdFlags::WAS_UP_TO_DATE) {
            "UpToDate"
        } else {
            "Outdated"
        }
    } else {
        "Inconsistent"
    };
    s += &format!(
        "flags:{} {}, {}, {}{}{}\n",
        if f.has(MdFlags::CRASHED_PRIMARY) {
            " crashed"
        } else {
            ""
        },
        if f.has(MdFlags::PRIMARY_IND) {
            "Primary"
        } else {
            "Secondary"
        },
        if f.has(MdFlags::CONNECTED_IND) {
            "Connected"
        } else {
            "StandAlone"
        },
        disk,
        if f.has(MdFlags::FULL_SYNC) {
            ", need full sync"
        } else {
            ""
        },
        if f.has(MdFlags::PEER_OUT_DATED) {
            ", peer Outdated"
        } else {
            ""
        },
    );
    s += &format!(
        "meta-data: {}\n",
        if f.has(MdFlags::AL_CLEAN) {
            "clean"
        } else {
            "need apply-al"
        }
    );
    if sb.la_size_sect != 0 {
        s += &format!(
            "last agreed size: {} ({} sectors)\n",
            ppsize(sb.la_size_sect >> 1),
            sb.la_size_sect
        );
        s += &format!(
            "last agreed max bio size: {} Byte\n",
            sb.la_peer_max_bio_size
        );
    } else {
        s += "zero size device -- never seen peer yet?\n";
    }
    s
}

/// `dstate` output (drbdmeta's mapping, including its "Consistent" quirk).
pub fn dstate(sb: &Superblock) -> &'static str {
    let f = sb.flags;
    if !f.has(MdFlags::CONSISTENT) {
        "Inconsistent"
    } else if !f.has(MdFlags::WAS_UP_TO_DATE) {
        "Outdated"
    } else if f.has(MdFlags::PEER_OUT_DATED) {
        "UpToDate"
    } else {
        "Consistent"
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The comment block at the top of dump-md (time in UTC).
pub fn dump_banner(argv: &[String]) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil((secs / 86400) as i64);
    let t = secs % 86400;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let prog = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let rest: String = argv.iter().skip(1).map(|a| format!(" {a}")).collect();
    format!(
        "# DRBD meta data dump\n# {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 [{secs}]\n# {}> {prog}{rest}\n#\n\n",
        t / 3600,
        t / 60 % 60,
        t % 60,
        host.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppsize_matches_drbd() {
        assert_eq!(ppsize(4), "4 KB");
        assert_eq!(ppsize(8192), "8192 KB");
        assert_eq!(ppsize(10000), "10 MB");
        assert_eq!(ppsize(131072), "128 MB");
        assert_eq!(ppsize(1536 * 1024), "1536 MB");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20779), (2026, 11, 22));
    }
}
