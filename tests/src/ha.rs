//! Helpers shared by the HA tests (`rdbd-ha` and the OCF agent `scripts/ocf/rdbd`):
//!
//! - [`Reap`]: stops a node's rdbd (and lazily unmounts what a test mounted) before the
//!   fixture's directory, which holds its pid file, goes away;
//! - [`HaConfig`]: writes `rdbd-ha`'s TOML configuration;
//! - [`OcfAgent`]: the OCF agent copied where `ocf-tester` wants it, run with the
//!   environment Pacemaker gives it, its master scores recorded by a stub `crm_master`
//!   (Pacemaker is not installed here).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bins::bin;
use crate::node::Node;
use crate::tools::{stderr, stdout};

/// Stops `.0`'s rdbd on drop (after unmounting the paths in `.1`, lazily): `down r0`,
/// `shutdown`, then SIGKILL if the daemon is still there.
pub struct Reap<'a>(pub &'a Node, pub Vec<PathBuf>);

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        for m in &self.1 {
            let _ = Command::new("umount").arg("-l").arg(m).output();
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(m)
                .output();
        }
        let _ = self.0.adm().args(["down", "r0"]).output();
        let _ = self.0.adm().arg("shutdown").output();
        self.0.crash();
    }
}

/// Writes an executable script.
pub fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// True when `p` is a mount point.
pub fn mounted(p: &Path) -> bool {
    Command::new("mountpoint")
        .arg("-q")
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A TOML basic string (JSON's escapes are TOML's).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// rdbd-ha's configuration file; `groups` is the `[[groups]]` part, as TOML text.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// `auto_failback` (absent: rdbd-ha's default).
    pub auto_failback: Option<bool>,
    /// The stonith command and its arguments (`{peer}` is replaced by rdbd-ha).
    pub stonith: Vec<String>,
    /// rdbd-ha's run directory (absent: given on the command line).
    pub run_dir: Option<PathBuf>,
    /// `[timings]`: keepalive, warntime, deadtime, initdead in ms.
    pub timings_ms: [u64; 4],
    /// `[auth]` method (`sha1`, `sha256`) and secret.
    pub auth: (String, String),
    /// `[[nodes]]`: name and heartbeat address.
    pub nodes: Vec<(String, String)>,
    /// `[commands]`: rdbdadm's global arguments (`-c`, `--node`, `--run-dir`).
    pub rdbdadm_args: Vec<String>,
    /// `[commands]`: start and stop timeouts in ms.
    pub start_stop_timeout_ms: (u64, u64),
    /// The `[[groups]]` tables.
    pub groups: String,
}

impl HaConfig {
    /// The configuration's text.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        if let Some(a) = self.auto_failback {
            out.push_str(&format!("auto_failback = {a}\n"));
        }
        out.push_str(&format!("stonith = {}\n", toml_list(&self.stonith)));
        if let Some(d) = &self.run_dir {
            out.push_str(&format!(
                "run_dir = {}\n",
                toml_str(&d.display().to_string())
            ));
        }
        let [keepalive, warntime, deadtime, initdead] = self.timings_ms;
        out.push_str(&format!(
            "[timings]\nkeepalive_ms = {keepalive}\nwarntime_ms = {warntime}\ndeadtime_ms = {deadtime}\ninitdead_ms = {initdead}\n"
        ));
        out.push_str(&format!(
            "[auth]\nmethod = {}\nsecret = {}\n",
            toml_str(&self.auth.0),
            toml_str(&self.auth.1)
        ));
        for (name, heartbeat) in &self.nodes {
            out.push_str(&format!(
                "[[nodes]]\nname = {}\nheartbeat = [{}]\n",
                toml_str(name),
                toml_str(heartbeat)
            ));
        }
        out.push_str(&format!(
            "[commands]\nrdbdadm = {}\nrdbdadm_args = {}\nstart_timeout_ms = {}\nstop_timeout_ms = {}\n",
            toml_str(&bin("rdbdadm").display().to_string()),
            toml_list(&self.rdbdadm_args),
            self.start_stop_timeout_ms.0,
            self.start_stop_timeout_ms.1,
        ));
        out.push_str(&self.groups);
        out
    }

    /// Writes the configuration to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).unwrap();
    }
}

/// rdbdadm's global arguments for `node`.
pub fn rdbdadm_args(node: &Node) -> Vec<String> {
    vec![
        "-c".into(),
        node.config.display().to_string(),
        "--node".into(),
        node.name.clone(),
        "--run-dir".into(),
        node.run_dir.display().to_string(),
    ]
}

/// The OCF agent copied into `dir/agent/rdbd`, in directories `nobody` can read
/// (ocf-tester checks that).
pub fn ocf_agent_copy(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ocf/rdbd");
    let d = dir.join("agent");
    std::fs::create_dir_all(&d).unwrap();
    for p in [dir, d.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dst = d.join("rdbd");
    std::fs::copy(&src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

/// The agent's instance parameters for resource `r0` on `node` (without `OCF_RESKEY_`).
pub fn ocf_params(node: &Node) -> Vec<(String, String)> {
    vec![
        ("drbd_resource".into(), "r0".into()),
        ("config".into(), node.config.display().to_string()),
        ("node".into(), node.name.clone()),
        ("run_dir".into(), node.run_dir.display().to_string()),
        ("rdbdadm".into(), bin("rdbdadm").display().to_string()),
    ]
}

/// The OCF agent for one node, run as Pacemaker runs a promotable clone's instance.
pub struct OcfAgent {
    /// The agent's copy.
    pub path: PathBuf,
    /// The environment of every action.
    pub env: Vec<(String, String)>,
    /// What the stub `crm_master` records, one call per line.
    pub crm_log: PathBuf,
}

impl OcfAgent {
    /// An agent for `node` in `dir` (its own directory: the stub and the log live there),
    /// with the clone meta attributes of a promotable clone (clone-max 2, master-max 1,
    /// notify true) and instance name `instance`.
    pub fn new(dir: &Path, node: &Node, instance: &str) -> OcfAgent {
        let path = ocf_agent_copy(dir);
        // A crm_master that records its arguments, first on PATH; the agent uses it
        // because the clone meta attributes say it runs under Pacemaker.
        let bindir = dir.join("bin");
        std::fs::create_dir_all(&bindir).unwrap();
        let crm_log = dir.join("crm_master.log");
        write_exec(
            &bindir.join("crm_master"),
            &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", crm_log.display()),
        );
        let mut env: Vec<(String, String)> = ocf_params(node)
            .into_iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v))
            .collect();
        for (k, v) in [
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RESOURCE_INSTANCE", instance),
            ("OCF_RESKEY_CRM_meta_clone_max", "2"),
            ("OCF_RESKEY_CRM_meta_clone_node_max", "1"),
            ("OCF_RESKEY_CRM_meta_master_max", "1"),
            ("OCF_RESKEY_CRM_meta_master_node_max", "1"),
            ("OCF_RESKEY_CRM_meta_notify", "true"),
            ("OCF_RESKEY_CRM_meta_on_node", &node.name),
        ] {
            env.push((k.into(), v.into()));
        }
        env.push((
            "PATH".into(),
            format!(
                "{}:{}",
                bindir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ));
        OcfAgent { path, env, crm_log }
    }

    /// Runs `action` with extra environment; returns the exit code and stdout+stderr.
    pub fn run_with(&self, action: &str, extra: &[(&str, &str)]) -> (i32, String) {
        let mut cmd = Command::new(&self.path);
        cmd.arg(action).envs(self.env.iter().map(|(k, v)| (k, v)));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    }

    /// Runs `action`; returns its exit code.
    pub fn run(&self, action: &str) -> i32 {
        self.run_with(action, &[]).0
    }

    /// The `crm_master` calls since the last look.
    pub fn crm_calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.crm_log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.crm_log);
        text.lines().map(String::from).collect()
    }
}
