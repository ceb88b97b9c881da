//! The real step runner: `ip addr`, `rdbdadm primary/secondary` (after the promotion
//! safety check), attach + `fsck -a` + `mount`, and LSB service scripts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdbd_types::{ConnState, DiskState, Role};
use tracing::info;

use super::attach::{self, AttachHost, Attachment};
use super::command::{run, Finished};
use super::{Action, StepOutcome, StepRunner};
use crate::config::{CommandsConfig, Device, ResourceKind, ResourceSpec};
use crate::policy;

/// Runs steps with real commands.
pub struct ShellRunner {
    commands: CommandsConfig,
    work_dir: PathBuf,
    attachments: HashMap<String, Attachment>,
    attach_host: AttachHost,
}

/// Runs `rdbdadm ARGS` and returns its stdout, or why it failed.
pub fn rdbdadm(
    commands: &CommandsConfig,
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let mut argv = vec![commands.rdbdadm.clone()];
    argv.extend(commands.rdbdadm_args.iter().cloned());
    argv.extend(args.iter().map(|s| s.to_string()));
    match run(&argv, &[], timeout) {
        Finished::Exit {
            code: 0, stdout, ..
        } => Ok(stdout),
        other => Err(format!("rdbdadm {}: {}", args.join(" "), other.describe())),
    }
}

/// `A/B` → (A, B) parsed.
fn pair<T: std::str::FromStr>(text: &str) -> Option<(T, T)> {
    let line = text.lines().next()?.trim();
    let (a, b) = line.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// rdbd's view of a resource, from `rdbdadm dstate`, `cstate` and `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskView {
    /// Local/peer disk state.
    pub disk: (DiskState, DiskState),
    /// Connection state.
    pub cstate: ConnState,
    /// Local/peer role.
    pub role: (Role, Role),
}

/// Reads a resource's states through rdbdadm.
pub fn disk_view(
    commands: &CommandsConfig,
    resource: &str,
    timeout: Duration,
) -> Result<DiskView, String> {
    let d = rdbdadm(commands, &["dstate", resource], timeout)?;
    let disk =
        pair(&d).ok_or_else(|| format!("rdbdadm dstate {resource}: unexpected '{}'", d.trim()))?;
    let c = rdbdadm(commands, &["cstate", resource], timeout)?;
    let cstate = c
        .trim()
        .parse()
        .map_err(|_| format!("rdbdadm cstate {resource}: unexpected '{}'", c.trim()))?;
    let r = rdbdadm(commands, &["role", resource], timeout)?;
    let role =
        pair(&r).ok_or_else(|| format!("rdbdadm role {resource}: unexpected '{}'", r.trim()))?;
    Ok(DiskView { disk, cstate, role })
}

/// Whether rdbd allows promoting `resource` here now (the safety rules).
pub fn check_promotable(
    commands: &CommandsConfig,
    resource: &str,
    timeout: Duration,
) -> Result<DiskView, String> {
    let v = disk_view(commands, resource, timeout)?;
    policy::may_promote(v.disk.0, v.disk.1).map_err(|e| format!("rdbd {resource}: {e}"))?;
    if policy::peer_is_primary(v.cstate, v.role.1) {
        return Err(format!(
            "rdbd {resource}: the peer is Primary and connected ({}); refusing a second Primary",
            v.cstate
        ));
    }
    Ok(v)
}

fn is_mounted(mountpoint: &str) -> bool {
    let target = Path::new(mountpoint)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(mountpoint));
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .any(|p| Path::new(&p.replace("\\040", " ")) == target)
    })
}

fn outcome(f: Finished) -> StepOutcome {
    match f {
        Finished::Exit { code: 0, .. } => StepOutcome::Ok,
        Finished::TimedOut => StepOutcome::TimedOut,
        other => StepOutcome::Failed(other.describe()),
    }
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

impl ShellRunner {
    /// A runner; `work_dir` holds nbdfuse mounts.
    pub fn new(commands: CommandsConfig, work_dir: &Path) -> Self {
        ShellRunner {
            commands,
            work_dir: work_dir.to_path_buf(),
            attachments: HashMap::new(),
            attach_host: AttachHost::default(),
        }
    }

    /// Looks for NBD devices and the attach programs in `host` (tests).
    pub fn with_attach_host(mut self, host: AttachHost) -> Self {
        self.attach_host = host;
        self
    }

    /// Finds a script by name in the script directories (or takes a path as is).
    pub fn resolve_script(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            return Some(PathBuf::from(name));
        }
        self.commands
            .script_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    fn interface_for(ip: &str, timeout: Duration) -> Result<String, String> {
        let addr = ip.split('/').next().unwrap_or(ip);
        match run(&argv(&["ip", "-o", "route", "get", addr]), &[], timeout) {
            Finished::Exit {
                code: 0, stdout, ..
            } => {
                let words: Vec<&str> = stdout.split_whitespace().collect();
                words
                    .windows(2)
                    .find(|w| w[0] == "dev")
                    .map(|w| w[1].to_string())
                    .ok_or_else(|| format!("ip route get {addr}: no device in '{}'", stdout.trim()))
            }
            other => Err(format!("ip route get {addr}: {}", other.describe())),
        }
    }

    fn ip(
        &mut self,
        address: &str,
        interface: Option<&str>,
        action: Action,
        timeout: Duration,
    ) -> StepOutcome {
        let iface = match interface {
            Some(i) => i.to_string(),
            None => match Self::interface_for(address, timeout) {
                Ok(i) => i,
                Err(e) => return StepOutcome::Failed(e),
            },
        };
        let present = || match run(
            &argv(&["ip", "-o", "addr", "show", "dev", &iface]),
            &[],
            timeout,
        ) {
            Finished::Exit {
                code: 0, stdout, ..
            } => Some(stdout.split_whitespace().any(|w| w == address)),
            _ => None,
        };
        match action {
            Action::Start => {
                if present() == Some(true) {
                    return StepOutcome::Ok;
                }
                let added = outcome(run(
                    &argv(&["ip", "addr", "add", address, "dev", &iface]),
                    &[],
                    timeout,
                ));
                if added.is_ok() {
                    super::garp::announce(address, &iface);
                }
                added
            }
            Action::Stop => {
                super::garp::cancel(address, &iface);
                if present() == Some(false) {
                    return StepOutcome::Ok;
                }
                outcome(run(
                    &argv(&["ip", "addr", "del", address, "dev", &iface]),
                    &[],
                    timeout,
                ))
            }
            Action::Status => match present() {
                Some(true) => StepOutcome::Ok,
                Some(false) => StepOutcome::NotRunning(format!("{address} not on {iface}")),
                None => StepOutcome::Failed(format!("ip addr show dev {iface} failed")),
            },
        }
    }

    fn rdbd(&mut self, resource: &str, action: Action, timeout: Duration) -> StepOutcome {
        match action {
            Action::Start => {
                let view = match check_promotable(&self.commands, resource, timeout) {
                    Ok(v) => v,
                    Err(e) => return StepOutcome::Failed(e),
                };
                if view.role.0 == Role::Primary {
                    return StepOutcome::Ok;
                }
                info!(resource, disk = %format!("{}/{}", view.disk.0, view.disk.1), cstate = %view.cstate, "promoting");
                rdbdadm(&self.commands, &["primary", resource], timeout)
                    .map(|_| StepOutcome::Ok)
                    .unwrap_or_else(StepOutcome::Failed)
            }
            Action::Stop => rdbdadm(&self.commands, &["secondary", resource], timeout)
                .map(|_| StepOutcome::Ok)
                .unwrap_or_else(StepOutcome::Failed),
            Action::Status => match rdbdadm(&self.commands, &["role", resource], timeout) {
                Ok(out) if out.trim_start().starts_with("Primary") => {
                    match rdbdadm(&self.commands, &["dstate", resource], timeout) {
                        Ok(d)
                            if d.trim_start().starts_with("UpToDate")
                                || d.trim_start().starts_with("Consistent") =>
                        {
                            StepOutcome::Ok
                        }
                        Ok(d) => StepOutcome::NotRunning(format!("Primary but disk {}", d.trim())),
                        Err(e) => StepOutcome::Failed(e),
                    }
                }
                Ok(out) => StepOutcome::NotRunning(format!("role {}", out.trim())),
                Err(e) => StepOutcome::Failed(e),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn filesystem(
        &mut self,
        device: Device,
        mountpoint: &str,
        fstype: &str,
        options: Option<&str>,
        fsck: bool,
        action: Action,
        timeout: Duration,
    ) -> StepOutcome {
        match action {
            Action::Status => {
                if is_mounted(mountpoint) {
                    StepOutcome::Ok
                } else {
                    StepOutcome::NotRunning(format!("{mountpoint} not mounted"))
                }
            }
            Action::Start => {
                if is_mounted(mountpoint) {
                    return StepOutcome::Ok;
                }
                let dev = match &device {
                    Device::Path(p) => PathBuf::from(p),
                    Device::Export(res) => {
                        if let Some(a) = self.attachments.get(mountpoint) {
                            a.device().to_path_buf()
                        } else {
                            let uri = match rdbdadm(&self.commands, &["nbd-uri", res], timeout) {
                                Ok(u) => u.trim().to_string(),
                                Err(e) => return StepOutcome::Failed(e),
                            };
                            let dir = self.work_dir.join(format!("fuse-{res}"));
                            match attach::attach_with(&self.attach_host, &uri, &dir, timeout) {
                                Ok(a) => {
                                    info!(resource = %res, device = %a.device().display(), "export attached");
                                    let d = a.device().to_path_buf();
                                    self.attachments.insert(mountpoint.to_string(), a);
                                    d
                                }
                                Err(e) => return StepOutcome::Failed(e),
                            }
                        }
                    }
                };
                let dev_s = dev.display().to_string();
                if fsck {
                    let mut a = vec!["fsck".to_string(), "-a".into()];
                    if !fstype.is_empty() {
                        a.push("-t".into());
                        a.push(fstype.into());
                    }
                    a.push(dev_s.clone());
                    match run(&a, &[], timeout) {
                        // 0: clean, 1: errors corrected.
                        Finished::Exit {
                            code: code @ (0 | 1),
                            ..
                        } => {
                            let what = if code == 0 {
                                "clean"
                            } else {
                                "errors corrected"
                            };
                            info!(device = %dev_s, mountpoint, "fsck -a: exit {code} ({what})");
                        }
                        other => {
                            return StepOutcome::Failed(format!(
                                "fsck {dev_s}: {}",
                                other.describe()
                            ))
                        }
                    }
                }
                if let Err(e) = std::fs::create_dir_all(mountpoint) {
                    return StepOutcome::Failed(format!("mkdir {mountpoint}: {e}"));
                }
                let mut m = vec!["mount".to_string()];
                if !fstype.is_empty() {
                    m.push("-t".into());
                    m.push(fstype.into());
                }
                if let Some(o) = options {
                    m.push("-o".into());
                    m.push(o.into());
                }
                m.push(dev_s);
                m.push(mountpoint.into());
                outcome(run(&m, &[], timeout))
            }
            Action::Stop => {
                if is_mounted(mountpoint) {
                    let f = run(&argv(&["umount", mountpoint]), &[], timeout);
                    if !f.success() {
                        return StepOutcome::Failed(format!(
                            "umount {mountpoint}: {}",
                            f.describe()
                        ));
                    }
                }
                if let Device::Export(res) = &device {
                    let dir = self.work_dir.join(format!("fuse-{res}"));
                    let result = match self.attachments.remove(mountpoint) {
                        Some(a) => attach::detach_with(&self.attach_host, a, &dir, timeout),
                        // Left by an earlier incarnation that died.
                        None => attach::detach_stale_with(&self.attach_host, &dir, timeout),
                    };
                    if let Err(e) = result {
                        return StepOutcome::Failed(e);
                    }
                }
                StepOutcome::Ok
            }
        }
    }

    fn script(
        &mut self,
        name: &str,
        args: &[String],
        action: Action,
        timeout: Duration,
    ) -> StepOutcome {
        let Some(path) = self.resolve_script(name) else {
            return StepOutcome::Failed(format!(
                "script '{name}' not found in {}",
                self.commands
                    .script_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let mut a = vec![path.display().to_string()];
        a.extend(args.iter().cloned());
        a.push(action.to_string());
        match (action, run(&a, &[], timeout)) {
            (_, Finished::Exit { code: 0, .. }) => StepOutcome::Ok,
            (_, Finished::TimedOut) => StepOutcome::TimedOut,
            // LSB status: 1 dead with pid file, 2 dead with lock, 3 not running.
            (Action::Status, f @ Finished::Exit { code: 1..=3, .. }) => {
                StepOutcome::NotRunning(f.describe())
            }
            (_, f) => StepOutcome::Failed(f.describe()),
        }
    }
}

impl StepRunner for ShellRunner {
    fn run(&mut self, resource: &ResourceSpec, action: Action, timeout: Duration) -> StepOutcome {
        match &resource.kind {
            ResourceKind::Ip { address, interface } => {
                self.ip(address, interface.as_deref(), action, timeout)
            }
            ResourceKind::Rdbd { resource } => self.rdbd(resource, action, timeout),
            ResourceKind::Filesystem {
                mountpoint,
                fstype,
                options,
                fsck,
                ..
            } => match resource.device() {
                Some(d) => self.filesystem(
                    d,
                    mountpoint,
                    fstype,
                    options.as_deref(),
                    *fsck,
                    action,
                    timeout,
                ),
                None => {
                    StepOutcome::Failed("filesystem needs exactly one of resource/device".into())
                }
            },
            ResourceKind::Script { name, args, .. } => self.script(name, args, action, timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_pairs() {
        assert_eq!(
            pair::<DiskState>("UpToDate/DUnknown\n"),
            Some((DiskState::UpToDate, DiskState::DUnknown))
        );
        assert_eq!(
            pair::<Role>("Primary/Unknown"),
            Some((Role::Primary, Role::Unknown))
        );
        assert_eq!(pair::<Role>("garbage"), None);
    }
}
