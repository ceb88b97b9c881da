//! [`dump`]: the model printed back as normalised drbd.conf text, in the
//! layout of `drbdadm dump` (8.3 `syncer` options moved to their 8.4
//! sections, aliases renamed, flags as `yes`/`no`, addresses with family).
//!
//! Parsing the output gives back an equal [`Config`].

use crate::model::{Config, Host, MetaDisk, Resource, ResourceDefaults, Section};
use crate::options::{spec, OptionKind, SectionKind};

const INDENT: &str = "    ";

/// Quotes `text` when drbdadm would (`esc()` in drbd-utils): empty, longer
/// than 80 characters, or any character outside `[a-zA-Z0-9/._-]`.
pub fn escape(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().count() <= 80
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if plain {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn line(out: &mut String, depth: usize, text: &str) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
    out.push_str(text);
    out.push('\n');
}

fn option_line(out: &mut String, depth: usize, kind: SectionKind, name: &str, value: &str) {
    let option_kind = spec(kind, name).map(|s| s.kind);
    let text = match option_kind {
        Some(OptionKind::Bare) => format!("{name};"),
        Some(OptionKind::Hosts) => {
            let hosts: Vec<String> = value.split_whitespace().map(escape).collect();
            format!("{name:<16} {};", hosts.join(" "))
        }
        // rdbd's own addresses are IP:PORT words; ':' needs no quoting.
        Some(OptionKind::Address) => format!("{name:<16} {value};"),
        _ => format!("{name:<16} {};", escape(value)),
    };
    line(out, depth, &text);
}

fn section(out: &mut String, depth: usize, kind: SectionKind, title: &str, options: &Section) {
    if options.is_empty() {
        return;
    }
    line(out, depth, &format!("{title} {{"));
    for (name, value) in options.iter() {
        option_line(out, depth + 1, kind, name, value.as_str());
    }
    line(out, depth, "}");
}

fn sections(out: &mut String, depth: usize, get: impl Fn(SectionKind) -> Section) {
    for kind in SectionKind::RESOURCE_SECTIONS {
        section(out, depth, kind, kind.name(), &get(kind));
    }
}

fn host(out: &mut String, h: &Host) {
    if h.floating {
        match h.address {
            Some(addr) => line(out, 1, &format!("floating {} {addr} {{", h.address_family)),
            None => line(out, 1, &format!("floating {} {{", h.name)),
        }
    } else {
        line(out, 1, &format!("on {} {{", escape(&h.name)));
    }
    section(out, 2, SectionKind::Options, "options", &h.options);
    section(out, 2, SectionKind::Disk, "disk", &h.disk_options);
    let minor = h.minor.map_or(String::new(), |m| format!("minor {m}"));
    match &h.device {
        Some(device) => line(
            out,
            2,
            &format!("{:<16} {} {minor};", "device", escape(device)),
        ),
        None => line(out, 2, &format!("{:<16} {minor};", "device")),
    }
    if let Some(disk) = &h.disk {
        line(
            out,
            2,
            &format!("{:<16} {};", "disk", escape(&disk.to_string_lossy())),
        );
    }
    let meta = match &h.meta_disk {
        MetaDisk::Internal => "internal".to_string(),
        MetaDisk::FlexibleExternal(dev) => escape(&dev.to_string_lossy()),
        MetaDisk::Indexed(dev, index) => format!("{} [{index}]", escape(&dev.to_string_lossy())),
    };
    line(out, 2, &format!("{:<16} {meta};", "meta-disk"));
    if let (Some(addr), false) = (h.address, h.floating) {
        line(
            out,
            2,
            &format!("{:<16} {} {addr};", "address", h.address_family),
        );
    }
    if let Some(addr) = h.nbd_address {
        line(out, 2, &format!("{:<16} {addr};", "nbd-address"));
    }
    line(out, 1, "}");
}

fn resource(out: &mut String, r: &Resource, common: Option<&ResourceDefaults>) {
    line(out, 0, &format!("resource {} {{", escape(&r.name)));
    for h in &r.hosts {
        host(out, h);
    }
    sections(out, 1, |kind| match common {
        Some(c) => r.section(kind).without_inherited(c.section(kind)),
        None => r.section(kind).clone(),
    });
    line(out, 0, "}");
}

/// Prints `config` as drbd.conf text, like `drbdadm dump`. With `resource`,
/// prints only that resource, its inherited options included (empty text
/// when there is no such resource).
pub fn dump(config: &Config, resource_name: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(name) = resource_name {
        if let Ok(r) = config.resource(name) {
            resource(&mut out, r, None);
        }
        return out;
    }
    if !config.global.is_empty() {
        section(&mut out, 0, SectionKind::Global, "global", &config.global);
        out.push('\n');
    }
    let common = &config.common;
    if SectionKind::RESOURCE_SECTIONS
        .iter()
        .any(|k| !common.section(*k).is_empty())
    {
        line(&mut out, 0, "common {");
        sections(&mut out, 1, |kind| common.section(kind).clone());
        line(&mut out, 0, "}");
        out.push('\n');
    }
    for r in &config.resources {
        resource(&mut out, r, Some(common));
        out.push('\n');
    }
    out
}

/// `dump` as `drbdadm dump` prints it on `node`: the same text, with drbdadm's comments
/// in front: `# FILE` before a full dump, and before each resource
/// `# resource NAME on NODE: ignored|not ignored, not stacked` (ignored: the resource
/// has no `on NODE` section, so this node does not run it) and `# defined at FILE:LINE`.
/// With `resource_name`, only that resource (empty text when there is none).
pub fn dump_on_host(config: &Config, resource_name: Option<&str>, node: &str) -> String {
    let note = |r: &Resource| {
        let ignored = if r.host(node).is_ok() {
            "not ignored"
        } else {
            "ignored"
        };
        let at = r.location();
        format!(
            "# resource {} on {node}: {ignored}, not stacked\n# defined at {}:{}\n",
            r.name,
            at.file.display(),
            at.line
        )
    };
    let Some(name) = resource_name else {
        let mut out = String::new();
        if let Some(main) = config.files().first() {
            out.push_str(&format!("# {}\n", main.display()));
        }
        // The full dump, each resource block preceded by its note.
        let text = dump(config, None);
        let mut resources = config.resources.iter();
        for block_line in text.split_inclusive('\n') {
            if block_line.starts_with("resource ") {
                if let Some(r) = resources.next() {
                    out.push_str(&note(r));
                }
            }
            out.push_str(block_line);
        }
        return out;
    };
    match config.resource(name) {
        Ok(r) => note(r) + &dump(config, Some(name)),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_on_host_marks_resources_of_other_hosts_as_ignored() {
        let config = crate::parse_drbd_conf(
            "resource r0 { device /dev/drbd0; disk /dev/a; meta-disk internal;\n\
               on alice { address 10.0.0.1:7789; } on bob { address 10.0.0.2:7789; } }\n\
             resource r1 { device /dev/drbd1; disk /dev/b; meta-disk internal;\n\
               on carol { address 10.0.0.3:7790; } on dave { address 10.0.0.4:7790; } }\n",
            std::path::Path::new("/etc/x.conf"),
        )
        .unwrap();
        let full = dump_on_host(&config, None, "carol");
        assert!(full.starts_with("# /etc/x.conf\n"), "{full}");
        let r0 = full
            .find("# resource r0 on carol: ignored, not stacked\n")
            .unwrap();
        let r1 = full
            .find("# resource r1 on carol: not ignored, not stacked\n")
            .unwrap();
        assert!(
            r0 < full.find("resource r0 {").unwrap() && r1 < full.find("resource r1 {").unwrap()
        );
        assert!(full.contains("# defined at /etc/x.conf:1\n"), "{full}");
        // Without the comments it is the plain dump.
        let plain: String = full
            .split_inclusive('\n')
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(plain, dump(&config, None));
        let one = dump_on_host(&config, Some("r1"), "carol");
        assert!(
            one.starts_with("# resource r1 on carol: not ignored"),
            "{one}"
        );
        assert!(dump_on_host(&config, Some("nosuch"), "carol").is_empty());
    }

    #[test]
    fn escapes_like_drbdadm() {
        assert_eq!(escape("sha1"), "sha1");
        assert_eq!(escape("/dev/sdb1"), "/dev/sdb1");
        assert_eq!(escape(""), "\"\"");
        assert_eq!(escape("a b"), "\"a b\"");
        assert_eq!(escape("x \"q\" a\\b"), "\"x \\\"q\\\" a\\\\b\"");
        assert_eq!(escape(&"a".repeat(81)), format!("\"{}\"", "a".repeat(81)));
    }
}
