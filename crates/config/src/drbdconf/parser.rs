//! The drbd.conf grammar of drbdadm 8.4, as a recursive-descent parser over
//! the tokens of one file. Includes are handed back to [`super::Loader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::{Tok, Token};
use super::Loader;
use crate::assemble::{resolve_device, store, RawHost, RawResource, RawVolume};
use crate::error::{ConfigError, Location};
use crate::model::address::parse_socket_addr;
use crate::model::{AddressFamily, MetaDisk, ResourceDefaults, Section};
use crate::options::{resolve, resolve_syncer, OptionKind, OptionSpec, Resolved, SectionKind};

/// Parses the tokens of one file.
pub struct Parser<'l> {
    tokens: Vec<Token>,
    pos: usize,
    file: Arc<Path>,
    loader: &'l mut Loader,
}

/// Which block a statement is in, for messages and for what it may contain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Common,
    Resource,
}

impl<'l> Parser<'l> {
    /// A parser for `tokens` of `file`.
    pub fn new(tokens: Vec<Token>, file: Arc<Path>, loader: &'l mut Loader) -> Self {
        Parser {
            tokens,
            pos: 0,
            file,
            loader,
        }
    }

    fn peek(&self) -> &Token {
        // The lexer always ends the list with Eof, and `next` never moves past it.
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn syntax(token: &Token, expected: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            at: token.at.clone(),
            expected: expected.into(),
            found: token.tok.describe(),
        }
    }

    fn expect(&mut self, want: Tok, expected: &str) -> Result<Token, ConfigError> {
        let token = self.next();
        if token.tok == want {
            Ok(token)
        } else {
            Err(Self::syntax(&token, expected))
        }
    }

    fn expect_semi(&mut self, after: &str) -> Result<(), ConfigError> {
        self.expect(Tok::Semi, &format!("';' after {after}"))
            .map(|_| ())
    }

    /// A word or quoted string (a name or a value).
    fn value(&mut self, what: &str) -> Result<(String, Location), ConfigError> {
        let token = self.next();
        match token.tok {
            Tok::Word(w) => Ok((w, token.at)),
            Tok::Str(s) => Ok((s, token.at)),
            _ => Err(Self::syntax(&token, what)),
        }
    }

    /// The next statement keyword of a block, or None at its `}`.
    fn keyword(
        &mut self,
        open: &Location,
        what: &str,
    ) -> Result<Option<(String, Location)>, ConfigError> {
        let token = self.next();
        match token.tok {
            Tok::RBrace => Ok(None),
            Tok::Word(w) => Ok(Some((w, token.at))),
            Tok::Eof => Err(ConfigError::UnterminatedBlock {
                at: open.clone(),
                what: what.to_string(),
            }),
            _ => Err(Self::syntax(&token, format!("a keyword or '}}' in {what}"))),
        }
    }

    fn note(&mut self, at: &Location, what: &str) {
        self.loader
            .raw
            .notes
            .push(format!("{at}: {what} is not implemented by rdbd yet"));
    }

    /// The whole file: global, common, resource, skip and include statements.
    pub fn parse_file(&mut self) -> Result<(), ConfigError> {
        loop {
            let token = self.next();
            let (word, at) = match token.tok {
                Tok::Eof => return Ok(()),
                Tok::Word(w) => (w, token.at),
                _ => {
                    return Err(Self::syntax(
                        &token,
                        "global, common, resource, skip or include",
                    ))
                }
            };
            match word.as_str() {
                "global" => self.parse_global(at)?,
                "common" => {
                    if let Some(first) = self.loader.common_at.replace(at.clone()) {
                        return Err(ConfigError::Duplicate {
                            at,
                            what: "common section".to_string(),
                            first,
                        });
                    }
                    let open = self.expect(Tok::LBrace, "'{' after common")?.at;
                    let mut raw = RawResource {
                        name: "common".to_string(),
                        at,
                        sections: ResourceDefaults::default(),
                        volume: RawVolume::default(),
                        hosts: Vec::new(),
                    };
                    self.parse_resource_body(&mut raw, &open, Scope::Common)?;
                    self.loader.raw.common = raw.sections;
                }
                "resource" => {
                    let (name, _) = self.value("a resource name after 'resource'")?;
                    let open = self.expect(Tok::LBrace, "'{' after the resource name")?.at;
                    let mut raw = RawResource {
                        name,
                        at,
                        sections: ResourceDefaults::default(),
                        volume: RawVolume::default(),
                        hosts: Vec::new(),
                    };
                    self.parse_resource_body(&mut raw, &open, Scope::Resource)?;
                    self.loader.raw.resources.push(raw);
                }
                "skip" => {
                    if !matches!(self.peek().tok, Tok::LBrace) {
                        self.value("'{' or a text after skip")?;
                    }
                    let open = self.expect(Tok::LBrace, "'{' after skip")?.at;
                    self.skip_block(&open, "skip")?;
                }
                "include" => {
                    let (pattern, _) = self.value("a file name or glob pattern after include")?;
                    self.expect_semi("the include file name")?;
                    let file = self.file.clone();
                    self.loader.include(&file, &pattern, &at)?;
                }
                _ => {
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word,
                        context: "the top level".to_string(),
                        expected: "global, common, resource, skip or include".to_string(),
                    })
                }
            }
        }
    }

    /// Skips a balanced `{ ... }` whose `{` was just read.
    fn skip_block(&mut self, open: &Location, what: &str) -> Result<(), ConfigError> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next().tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace => depth -= 1,
                Tok::Eof => {
                    return Err(ConfigError::UnterminatedBlock {
                        at: open.clone(),
                        what: what.to_string(),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_global(&mut self, at: Location) -> Result<(), ConfigError> {
        if let Some(first) = self.loader.global_at.replace(at.clone()) {
            return Err(ConfigError::Duplicate {
                at,
                what: "global section".to_string(),
                first,
            });
        }
        let open = self.expect(Tok::LBrace, "'{' after global")?.at;
        let mut global = std::mem::take(&mut self.loader.raw.global);
        let result = self.parse_options(&open, SectionKind::Global, &mut global);
        self.loader.raw.global = global;
        result
    }

    /// Reads the value of `spec` (the name was just read) up to and including `;`.
    fn option_value(&mut self, spec: &OptionSpec) -> Result<(String, Location), ConfigError> {
        let after = format!("option value of {}", spec.name);
        match spec.kind {
            OptionKind::Flag { .. } => {
                let token = self.next();
                match token.tok {
                    Tok::Semi => Ok(("yes".to_string(), token.at)),
                    Tok::Word(w) => {
                        self.expect_semi(&after)?;
                        Ok((w, token.at))
                    }
                    _ => Err(Self::syntax(
                        &token,
                        format!("yes, no or ';' after {}", spec.name),
                    )),
                }
            }
            OptionKind::Bare => {
                let token = self.expect(Tok::Semi, &format!("';' after {}", spec.name))?;
                Ok(("yes".to_string(), token.at))
            }
            OptionKind::Hosts => {
                let (first, at) = self.value(&format!("a host name after {}", spec.name))?;
                let mut names = vec![first];
                loop {
                    let token = self.next();
                    match token.tok {
                        Tok::Semi => break,
                        Tok::Word(w) | Tok::Str(w) => names.push(w),
                        _ => {
                            return Err(Self::syntax(
                                &token,
                                format!("a host name or ';' after {}", spec.name),
                            ))
                        }
                    }
                }
                Ok((names.join(" "), at))
            }
            OptionKind::Address => {
                let value = self.address_text(spec.name)?;
                self.expect_semi(&after)?;
                Ok(value)
            }
            OptionKind::Number { .. } | OptionKind::Choice { .. } | OptionKind::Text => {
                let value = self.value(&format!("a value after {}", spec.name))?;
                self.expect_semi(&after)?;
                Ok(value)
            }
        }
    }

    /// The body of an option section (`net { ... }`); the `{` was read.
    fn parse_options(
        &mut self,
        open: &Location,
        kind: SectionKind,
        target: &mut Section,
    ) -> Result<(), ConfigError> {
        let what = format!("{} section", kind.name());
        while let Some((name, at)) = self.keyword(open, &what)? {
            match resolve(kind, &name, &at)? {
                Resolved::Option(spec) => {
                    let (value, value_at) = self.option_value(spec)?;
                    store(target, spec, &value, &value_at, &at)?;
                }
                Resolved::NoFlag(spec) => {
                    self.expect_semi(&name)?;
                    store(target, spec, "no", &at, &at)?;
                }
                Resolved::Deprecated => {
                    self.value(&format!("a value after {name}"))?;
                    self.expect_semi(&format!("option value of {name}"))?;
                    tracing::debug!("{at}: ignoring deprecated option '{name}'");
                }
            }
        }
        Ok(())
    }

    /// An 8.3 `syncer { }`: each option goes where drbdadm-84 puts it.
    fn parse_syncer(
        &mut self,
        open: &Location,
        target: &mut ResourceDefaults,
    ) -> Result<(), ConfigError> {
        while let Some((name, at)) = self.keyword(open, "syncer section")? {
            let spec = resolve_syncer(&name, &at)?;
            let (value, value_at) = self.option_value(spec)?;
            store(
                target.section_mut(spec.section),
                spec,
                &value,
                &value_at,
                &at,
            )?;
        }
        Ok(())
    }

    fn section_once(
        seen: &mut Vec<(String, Location)>,
        what: &str,
        at: &Location,
    ) -> Result<(), ConfigError> {
        if let Some((_, first)) = seen.iter().find(|(w, _)| w == what) {
            return Err(ConfigError::Duplicate {
                at: at.clone(),
                what: what.to_string(),
                first: first.clone(),
            });
        }
        seen.push((what.to_string(), at.clone()));
        Ok(())
    }

    fn parse_resource_body(
        &mut self,
        raw: &mut RawResource,
        open: &Location,
        scope: Scope,
    ) -> Result<(), ConfigError> {
        let context = match scope {
            Scope::Common => "common section".to_string(),
            Scope::Resource => format!("resource {}", raw.name),
        };
        let mut seen: Vec<(String, Location)> = Vec::new();
        while let Some((word, at)) = self.keyword(open, &context)? {
            let section = match word.as_str() {
                "net" => Some(SectionKind::Net),
                "startup" => Some(SectionKind::Startup),
                "handlers" => Some(SectionKind::Handlers),
                "options" => Some(SectionKind::Options),
                "disk" if self.peek().tok == Tok::LBrace => Some(SectionKind::Disk),
                _ => None,
            };
            if let Some(kind) = section {
                Self::section_once(&mut seen, &format!("{} section", kind.name()), &at)?;
                let open = self.expect(Tok::LBrace, &format!("'{{' after {word}"))?.at;
                let target = raw.sections.section_mut(kind);
                let mut section = std::mem::take(target);
                let result = self.parse_options(&open, kind, &mut section);
                *raw.sections.section_mut(kind) = section;
                result?;
                continue;
            }
            match (word.as_str(), scope) {
                ("protocol", _) => {
                    Self::section_once(&mut seen, "protocol statement", &at)?;
                    let spec = crate::options::spec(SectionKind::Net, "protocol")
                        .ok_or_else(|| Self::syntax(&self.peek().clone(), "protocol"))?;
                    let (value, value_at) = self.option_value(spec)?;
                    store(&mut raw.sections.net, spec, &value, &value_at, &at)?;
                }
                ("syncer", _) => {
                    Self::section_once(&mut seen, "syncer section", &at)?;
                    let open = self.expect(Tok::LBrace, "'{' after syncer")?.at;
                    self.parse_syncer(&open, &mut raw.sections)?;
                }
                ("proxy", _) => {
                    let open = self.expect(Tok::LBrace, "'{' after proxy")?.at;
                    self.skip_block(&open, "proxy section")?;
                    self.note(&at, "the proxy section");
                }
                ("on", Scope::Resource) => {
                    let (name, _) = self.value("a host name after 'on'")?;
                    let token = self.next();
                    match token.tok {
                        Tok::LBrace => {}
                        Tok::Word(_) | Tok::Str(_) => {
                            return Err(ConfigError::Unsupported {
                                at: token.at,
                                what: "an 'on' section with several host names".to_string(),
                            })
                        }
                        _ => return Err(Self::syntax(&token, "'{' after the host name")),
                    }
                    let host =
                        self.parse_host(RawHost::new(name, at, false), &raw.name, &token.at)?;
                    raw.hosts.push(host);
                }
                ("floating", Scope::Resource) => {
                    let (family, addr, _) = self.parse_address(&at, false)?;
                    let open = self
                        .expect(Tok::LBrace, "'{' after the floating address")?
                        .at;
                    let name = addr.to_string();
                    let mut host = RawHost::new(name, at.clone(), true);
                    host.address = Some((family, addr, at.clone()));
                    let host = self.parse_host(host, &raw.name, &open)?;
                    raw.hosts.push(host);
                }
                ("stacked-on-top-of" | "_this_host" | "_remote_host", Scope::Resource) => {
                    return Err(ConfigError::Unsupported {
                        at,
                        what: format!("'{word}' (stacked resources)"),
                    })
                }
                ("ignore-on", Scope::Resource) => {
                    self.value("a host name after ignore-on")?;
                    self.expect_semi("the ignore-on host name")?;
                    tracing::debug!("{at}: ignoring deprecated 'ignore-on'");
                }
                ("device" | "disk" | "meta-disk" | "flexible-meta-disk", Scope::Resource) => {
                    let mut volume = std::mem::take(&mut raw.volume);
                    let result = self.parse_volume_statement(&word, &at, &mut volume, None);
                    raw.volume = volume;
                    result?;
                }
                ("volume", Scope::Resource) => {
                    let mut volume = std::mem::take(&mut raw.volume);
                    let result = self.parse_volume_block(&mut volume, None);
                    raw.volume = volume;
                    result?;
                }
                _ => {
                    let expected = match scope {
                        Scope::Common => "protocol, net, disk, syncer, startup, handlers or options",
                        Scope::Resource => "protocol, on, floating, device, disk, meta-disk, volume, net, syncer, startup, handlers or options",
                    };
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word,
                        context,
                        expected: expected.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// `volume N { device; disk; meta-disk; }`: only volume 0 exists in rdbd.
    fn parse_volume_block(
        &mut self,
        volume: &mut RawVolume,
        mut host_disk_options: Option<&mut Section>,
    ) -> Result<(), ConfigError> {
        let (number, number_at) = self.value("a volume number after volume")?;
        if number != "0" {
            return Err(ConfigError::Unsupported {
                at: number_at,
                what: format!("volume {number} (rdbd resources have exactly one volume, 0)"),
            });
        }
        let open = self.expect(Tok::LBrace, "'{' after the volume number")?.at;
        while let Some((word, word_at)) = self.keyword(&open, "volume 0")? {
            match word.as_str() {
                "device" | "disk" | "meta-disk" | "flexible-meta-disk" => self
                    .parse_volume_statement(
                        &word,
                        &word_at,
                        volume,
                        host_disk_options.as_deref_mut(),
                    )?,
                _ => {
                    return Err(ConfigError::UnknownKeyword {
                        at: word_at,
                        word,
                        context: "volume 0".to_string(),
                        expected: "device, disk, meta-disk or flexible-meta-disk".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// `device ...;`, `disk DEV;` / `disk { }`, `meta-disk ...;`,
    /// `flexible-meta-disk ...;` (the keyword was read).
    fn parse_volume_statement(
        &mut self,
        word: &str,
        at: &Location,
        volume: &mut RawVolume,
        disk_options: Option<&mut Section>,
    ) -> Result<(), ConfigError> {
        let duplicate = |first: &Location, what: &str| ConfigError::Duplicate {
            at: at.clone(),
            what: format!("{what} statement"),
            first: first.clone(),
        };
        match word {
            "device" => {
                if let Some((_, _, first)) = &volume.device {
                    return Err(duplicate(first, "device"));
                }
                let (name, minor) = self.parse_device_args()?;
                let (minor, device) = resolve_device(name.as_deref(), minor, at)?;
                volume.device = Some((minor, device, at.clone()));
            }
            "disk" => {
                if self.peek().tok == Tok::LBrace {
                    let open = self.next().at;
                    match disk_options {
                        Some(target) => self.parse_options(&open, SectionKind::Disk, target)?,
                        None => {
                            return Err(ConfigError::Syntax {
                                at: open,
                                expected: "a disk device name".to_string(),
                                found: "'{'".to_string(),
                            })
                        }
                    }
                    return Ok(());
                }
                if let Some((_, first)) = &volume.disk {
                    return Err(duplicate(first, "disk"));
                }
                let (disk, _) = self.value("a disk device name after disk")?;
                self.expect_semi("the disk device name")?;
                volume.disk = Some((PathBuf::from(disk), at.clone()));
            }
            "meta-disk" | "flexible-meta-disk" => {
                if let Some((_, first)) = &volume.meta_disk {
                    return Err(duplicate(first, "meta-disk"));
                }
                let (dev, _) = self.value(&format!("internal or a device after {word}"))?;
                let meta = if dev == "internal" {
                    self.expect_semi(&format!("{word} internal"))?;
                    MetaDisk::Internal
                } else if word == "flexible-meta-disk" {
                    self.expect_semi("the meta-disk device")?;
                    MetaDisk::FlexibleExternal(PathBuf::from(dev))
                } else {
                    let token = self.next();
                    match token.tok {
                        Tok::Semi => MetaDisk::FlexibleExternal(PathBuf::from(dev)),
                        Tok::LBracket => {
                            let (index, index_at) = self.value("a meta-data index after '['")?;
                            let index: u32 =
                                index.parse().map_err(|_| ConfigError::InvalidValue {
                                    at: index_at,
                                    name: "meta-disk index".to_string(),
                                    value: index.clone(),
                                    reason: "expected a whole number".to_string(),
                                })?;
                            self.expect(Tok::RBracket, "']' after the meta-data index")?;
                            self.expect_semi("meta-disk DEVICE [INDEX]")?;
                            MetaDisk::Indexed(PathBuf::from(dev), index)
                        }
                        _ => {
                            return Err(Self::syntax(
                                &token,
                                "'[' or ';' after the meta-disk device",
                            ))
                        }
                    }
                };
                volume.meta_disk = Some((meta, at.clone()));
            }
            _ => unreachable!("caller passes only volume keywords"),
        }
        Ok(())
    }

    /// After `device`: `NAME;`, `NAME minor N;` or `minor N;`.
    fn parse_device_args(&mut self) -> Result<(Option<String>, Option<u32>), ConfigError> {
        let (first, _) = self.value("a device name or 'minor' after device")?;
        let name = if first == "minor" { None } else { Some(first) };
        if name.is_some() {
            let token = self.next();
            match token.tok {
                Tok::Semi => return Ok((name, None)),
                Tok::Word(ref w) if w == "minor" => {}
                _ => return Err(Self::syntax(&token, "'minor' or ';' after the device name")),
            }
        }
        let (number, number_at) = self.value("a minor number after 'minor'")?;
        let minor: u32 = number.parse().map_err(|_| ConfigError::InvalidValue {
            at: number_at,
            name: "minor".to_string(),
            value: number.clone(),
            reason: "expected a whole number".to_string(),
        })?;
        self.expect_semi("the minor number")?;
        Ok((name, Some(minor)))
    }

    /// rdbd's `IP:PORT` or `[IPV6]:PORT` (the lexer splits off the brackets).
    fn address_text(&mut self, name: &str) -> Result<(String, Location), ConfigError> {
        if self.peek().tok != Tok::LBracket {
            return self.value(&format!("IP:PORT after {name}"));
        }
        let open = self.next();
        let (ip, _) = self.value("an IPv6 address after '['")?;
        self.expect(Tok::RBracket, "']' after the IPv6 address")?;
        let (port, _) = self.value("':PORT' after the IPv6 address")?;
        Ok((format!("[{ip}]{port}"), open.at))
    }

    /// `[ipv4|ipv6|ssocks|sdp] ADDR:PORT`, with `;` when `with_semi`.
    fn parse_address(
        &mut self,
        at: &Location,
        with_semi: bool,
    ) -> Result<(AddressFamily, std::net::SocketAddr, Location), ConfigError> {
        let (first, first_at) = self.value("an address after 'address'")?;
        let (family, text, text_at) = match AddressFamily::from_keyword(&first) {
            Some(AddressFamily::Ipv6) => {
                let open = self.expect(Tok::LBracket, "'[' before an IPv6 address")?;
                let (ip, _) = self.value("an IPv6 address after '['")?;
                self.expect(Tok::RBracket, "']' after the IPv6 address")?;
                let (port, _) = self.value("':PORT' after the IPv6 address")?;
                (AddressFamily::Ipv6, format!("[{ip}]{port}"), open.at)
            }
            Some(family) => {
                let (text, text_at) = self.value("ADDRESS:PORT after the address family")?;
                (family, text, text_at)
            }
            None => (AddressFamily::Ipv4, first, first_at),
        };
        let addr = parse_socket_addr(&text).map_err(|reason| ConfigError::InvalidValue {
            at: text_at.clone(),
            name: "address".to_string(),
            value: text.clone(),
            reason,
        })?;
        if family != AddressFamily::Ipv6 && addr.is_ipv6() {
            return Err(ConfigError::InvalidValue {
                at: text_at,
                name: "address".to_string(),
                value: text,
                reason: "IPv6 addresses need the ipv6 keyword: address ipv6 [ADDR]:PORT"
                    .to_string(),
            });
        }
        if with_semi {
            self.expect_semi("the address")?;
        }
        if matches!(family, AddressFamily::Ssocks | AddressFamily::Sdp) {
            self.note(at, &format!("address family '{family}'"));
        }
        Ok((family, addr, text_at))
    }

    /// The body of `on NAME { }` / `floating ADDR { }`; the `{` was read.
    fn parse_host(
        &mut self,
        mut host: RawHost,
        resource: &str,
        open: &Location,
    ) -> Result<RawHost, ConfigError> {
        let context = if host.floating {
            format!("floating {} in resource {resource}", host.name)
        } else {
            format!("on {} in resource {resource}", host.name)
        };
        let mut seen: Vec<(String, Location)> = Vec::new();
        while let Some((word, at)) = self.keyword(open, &context)? {
            match word.as_str() {
                "device" | "disk" | "meta-disk" | "flexible-meta-disk" => {
                    let mut volume = std::mem::take(&mut host.volume);
                    let result =
                        self.parse_volume_statement(&word, &at, &mut volume, Some(&mut host.disk_options));
                    host.volume = volume;
                    result?;
                }
                "volume" => {
                    let mut volume = std::mem::take(&mut host.volume);
                    let result = self.parse_volume_block(&mut volume, Some(&mut host.disk_options));
                    host.volume = volume;
                    result?;
                }
                "address" if !host.floating => {
                    Self::section_once(&mut seen, "address statement", &at)?;
                    host.address = Some(self.parse_address(&at, true)?);
                }
                "alternate-link-address" if !host.floating => {
                    Self::section_once(&mut seen, "alternate-link-address statement", &at)?;
                    self.parse_address(&at, true)?;
                    self.note(&at, "alternate-link-address");
                }
                "nbd-address" => {
                    Self::section_once(&mut seen, "nbd-address statement", &at)?;
                    let (text, text_at) = self.address_text("nbd-address")?;
                    self.expect_semi("the nbd-address")?;
                    let addr = parse_socket_addr(&text).map_err(|reason| ConfigError::InvalidValue {
                        at: text_at.clone(),
                        name: "nbd-address".to_string(),
                        value: text.clone(),
                        reason,
                    })?;
                    host.nbd_address = Some((addr, text_at));
                }
                "options" => {
                    Self::section_once(&mut seen, "options section", &at)?;
                    let open = self.expect(Tok::LBrace, "'{' after options")?.at;
                    self.parse_options(&open, SectionKind::Options, &mut host.options)?;
                }
                "proxy" => {
                    while !matches!(self.peek().tok, Tok::LBrace | Tok::Eof | Tok::RBrace) {
                        self.next();
                    }
                    let open = self.expect(Tok::LBrace, "'{' of the proxy section")?.at;
                    self.skip_block(&open, "proxy section")?;
                    self.note(&at, "the proxy section");
                }
                _ => {
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word,
                        context,
                        expected: "device, disk, meta-disk, flexible-meta-disk, address, nbd-address, volume or options"
                            .to_string(),
                    })
                }
            }
        }
        Ok(host)
    }
}
