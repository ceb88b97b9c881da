//! A reader of the `/proc/drbd` format, for tests and tools that compare rdbd's
//! status file with the kernel's.

use rdbd_types::{ConnState, DiskState, Role};

/// One minor's first two lines, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcMinor {
    /// The minor number.
    pub minor: u32,
    /// `cs:`.
    pub cstate: String,
    /// `ro:` local/peer, absent for `cs:Unconfigured`.
    pub roles: Option<(Role, Role)>,
    /// `ds:` local/peer.
    pub disks: Option<(DiskState, DiskState)>,
    /// The protocol letter, or ' '.
    pub protocol: char,
    /// The six flag characters (`r-----`).
    pub flags: String,
    /// `name:value` pairs of the counters line (`wo` keeps its letter as text).
    pub counters: Vec<(String, String)>,
    /// The progress lines (without their leading tab), if any.
    pub progress: Vec<String>,
}

impl ProcMinor {
    /// The parsed connection state, when it is one (not `Unconfigured`).
    pub fn conn_state(&self) -> Option<ConnState> {
        self.cstate.parse().ok()
    }

    /// A numeric counter by name (`ns`, `dw`, `oos`, ...).
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// What was wrong with a `/proc/drbd` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/proc/drbd line {line}: {what}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected.
    pub what: String,
}

/// Parses a whole `/proc/drbd` text: the version line, then the minors.
pub fn parse(text: &str) -> Result<(String, Vec<ProcMinor>), ParseError> {
    let mut lines = text.lines().enumerate().peekable();
    let version = match lines.next() {
        Some((_, l)) if l.starts_with("version: ") => l.to_string(),
        _ => {
            return Err(ParseError {
                line: 1,
                what: "expected 'version: ...'".into(),
            })
        }
    };
    let mut minors: Vec<ProcMinor> = Vec::new();
    for (idx, line) in lines {
        let n = idx + 1;
        if line.is_empty() || line.starts_with("srcversion:") || line.starts_with("GIT-hash:") {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            let m = minors.last_mut().ok_or(ParseError {
                line: n,
                what: "progress line before any minor".into(),
            })?;
            m.progress.push(rest.to_string());
        } else if line.starts_with("    ") {
            let m = minors.last_mut().ok_or(ParseError {
                line: n,
                what: "counters line before any minor".into(),
            })?;
            for pair in line.split_whitespace() {
                let (k, v) = pair.split_once(':').ok_or_else(|| ParseError {
                    line: n,
                    what: format!("expected name:value, got '{pair}'"),
                })?;
                m.counters.push((k.to_string(), v.to_string()));
            }
        } else {
            minors.push(parse_minor_line(line, n)?);
        }
    }
    Ok((version, minors))
}

fn parse_minor_line(line: &str, n: usize) -> Result<ProcMinor, ParseError> {
    let err = |what: &str| ParseError {
        line: n,
        what: what.to_string(),
    };
    let (minor, rest) = line
        .split_once(": ")
        .ok_or_else(|| err("expected 'N: cs:...'"))?;
    let minor: u32 = minor.trim().parse().map_err(|_| err("bad minor number"))?;
    let cstate = rest
        .strip_prefix("cs:")
        .ok_or_else(|| err("expected 'cs:'"))?
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut m = ProcMinor {
        minor,
        cstate,
        roles: None,
        disks: None,
        protocol: ' ',
        flags: String::new(),
        counters: Vec::new(),
        progress: Vec::new(),
    };
    if m.cstate == "Unconfigured" {
        return Ok(m);
    }
    // "cs:X ro:A/B ds:C/D P flags" where P may be a space.
    let after_cs = &rest[3 + m.cstate.len()..];
    let ro = after_cs
        .strip_prefix(" ro:")
        .ok_or_else(|| err("expected ' ro:'"))?;
    let (roles, after_ro) = ro
        .split_once(' ')
        .ok_or_else(|| err("expected ds: after ro:"))?;
    let (r1, r2) = roles
        .split_once('/')
        .ok_or_else(|| err("expected ro:A/B"))?;
    m.roles = Some((
        r1.parse().map_err(|_| err("bad role"))?,
        r2.parse().map_err(|_| err("bad peer role"))?,
    ));
    let ds = after_ro
        .strip_prefix("ds:")
        .ok_or_else(|| err("expected 'ds:'"))?;
    let (disks, tail) = ds
        .split_once(' ')
        .ok_or_else(|| err("expected protocol after ds:"))?;
    let (d1, d2) = disks
        .split_once('/')
        .ok_or_else(|| err("expected ds:A/B"))?;
    m.disks = Some((
        d1.parse().map_err(|_| err("bad disk state"))?,
        d2.parse().map_err(|_| err("bad peer disk state"))?,
    ));
    let mut chars = tail.chars();
    m.protocol = chars.next().ok_or_else(|| err("missing protocol"))?;
    if chars.next() != Some(' ') {
        return Err(err("expected a space after the protocol letter"));
    }
    m.flags = chars.as_str().to_string();
    if m.flags.len() != 6 {
        return Err(err("expected six flag characters"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_output() {
        let text = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: B536C32A3EADA868561EFD9 \n\n 5: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent B r-----\n    ns:20480 nr:0 dw:0 dr:20480 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:241620\n\t[>...................] sync'ed:  9.4% (241620/262100)K\n\tfinish: 0:00:11 speed: 20,480 (20,480) K/sec\n 6: cs:Unconfigured\n";
        let (version, minors) = parse(text).unwrap();
        assert!(version.contains("proto:86-101"));
        assert_eq!(minors.len(), 2);
        let m = &minors[0];
        assert_eq!(m.minor, 5);
        assert_eq!(m.conn_state(), Some(ConnState::SyncSource));
        assert_eq!(m.roles, Some((Role::Primary, Role::Secondary)));
        assert_eq!(m.protocol, 'B');
        assert_eq!(m.counter("oos"), Some(241620));
        assert_eq!(m.progress.len(), 2);
        assert_eq!(minors[1].cstate, "Unconfigured");
    }

    #[test]
    fn round_trips_our_renderer() {
        let mut r = crate::status::ResourceStatus::unconfigured("r0", 0);
        r.disk = DiskState::Inconsistent;
        r.counters.dw_kib = 12;
        let (_, minors) = parse(&crate::status::proc_drbd::render(&[r])).unwrap();
        assert_eq!(
            minors[0].disks,
            Some((DiskState::Inconsistent, DiskState::DUnknown))
        );
        assert_eq!(minors[0].protocol, ' ');
        assert_eq!(minors[0].counter("dw"), Some(12));
    }

    #[test]
    fn rejects_garbage_with_a_line_number() {
        let e = parse("version: x\n 0: cs:Connected ro:Primary\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("hello").is_err());
    }
}
