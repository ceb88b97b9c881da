//! The minor line of a `/proc/drbd` text (` 0: cs:Connected ro:Primary/Secondary
//! ds:UpToDate/UpToDate C r-----`), as the kernel and rdbd's status file print it, and the
//! check that two sides of one connection agree: the same connection state and protocol,
//! roles and disk states swapped.

/// The states on one minor's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinorLine {
    /// `cs:` connection state.
    pub cs: String,
    /// `ro:` this side's role.
    pub role: String,
    /// `ro:` the peer's role as this side sees it.
    pub peer_role: String,
    /// `ds:` this side's disk state.
    pub disk: String,
    /// `ds:` the peer's disk state as this side sees it.
    pub peer_disk: String,
    /// The protocol letter after the disk states.
    pub protocol: String,
}

/// Parses the line of `minor` in a `/proc/drbd` text.
pub fn minor_line(text: &str, minor: u32) -> Option<MinorLine> {
    let prefix = format!("{minor}: cs:");
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))?;
    let mut words = line.split_whitespace().skip(1);
    let cs = words.next()?.strip_prefix("cs:")?.to_string();
    let (role, peer_role) = words.next()?.strip_prefix("ro:")?.split_once('/')?;
    let (disk, peer_disk) = words.next()?.strip_prefix("ds:")?.split_once('/')?;
    let protocol = words.next()?.to_string();
    Some(MinorLine {
        cs,
        role: role.to_string(),
        peer_role: peer_role.to_string(),
        disk: disk.to_string(),
        peer_disk: peer_disk.to_string(),
        protocol,
    })
}

/// Why two sides' lines do not describe the same connection, or `None` when they do.
pub fn mismatch(ours: &MinorLine, theirs: &MinorLine) -> Option<String> {
    let pairs = [
        ("cs", &ours.cs, &theirs.cs),
        ("our role / their peer role", &ours.role, &theirs.peer_role),
        ("our peer role / their role", &ours.peer_role, &theirs.role),
        ("our disk / their peer disk", &ours.disk, &theirs.peer_disk),
        ("our peer disk / their disk", &ours.peer_disk, &theirs.disk),
        ("protocol", &ours.protocol, &theirs.protocol),
    ];
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("{what}: {a} vs {b}"))
        .collect();
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: &str = "version: 8.4.11 (api:1/proto:86-101)\n\
        srcversion: B536C32A3EADA868561EFD9 \n\n \
        0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----\n    \
        ns:0 nr:65496 dw:65496 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n";

    #[test]
    fn parses_the_kernel_line() {
        let l = minor_line(KERNEL, 0).unwrap();
        assert_eq!(l.cs, "Connected");
        assert_eq!(
            (l.role.as_str(), l.peer_role.as_str()),
            ("Secondary", "Primary")
        );
        assert_eq!(
            (l.disk.as_str(), l.peer_disk.as_str()),
            ("UpToDate", "UpToDate")
        );
        assert_eq!(l.protocol, "C");
        assert!(minor_line(KERNEL, 1).is_none());
    }

    #[test]
    fn mirrored_sides_match_and_others_do_not() {
        let theirs = minor_line(KERNEL, 0).unwrap();
        let ours = minor_line(
            " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
            0,
        )
        .unwrap();
        assert_eq!(mismatch(&ours, &theirs), None);
        let same_roles = minor_line(
            " 0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----",
            0,
        )
        .unwrap();
        let why = mismatch(&same_roles, &theirs).unwrap();
        assert!(why.contains("our role / their peer role"), "{why}");
        let other_protocol = minor_line(
            " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate A r-----",
            0,
        )
        .unwrap();
        assert!(mismatch(&other_protocol, &theirs)
            .unwrap()
            .contains("protocol"));
    }
}
