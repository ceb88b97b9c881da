//! Attaching an rdbd export (an NBD URI) as a local block device: the kernel's
//! `nbd-client` where `/dev/nbd*` exists, otherwise `nbdfuse` (a file) + `losetup`.
//! Where devices and programs are looked for is an [`AttachHost`] (the real `/dev`,
//! `/sys/block` and `$PATH` by default; tests use a fake one).

mod args;
mod host;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::command::{run, Finished};
pub use args::{nbd_client_args, NBD_BLOCK_SIZE_BYTES};
pub use host::{AttachHost, MAX_NBD_DEVICES};

/// A block device attached to an export.
#[derive(Debug)]
pub enum Attachment {
    /// `/dev/nbdN` through nbd-client.
    Kernel {
        /// The device.
        device: PathBuf,
    },
    /// A loop device over an nbdfuse file.
    Loop {
        /// The loop device.
        device: PathBuf,
        /// The FUSE mount directory.
        fuse_dir: PathBuf,
        /// The nbdfuse process.
        nbdfuse: Child,
    },
}

impl Attachment {
    /// The block device.
    pub fn device(&self) -> &Path {
        match self {
            Attachment::Kernel { device } | Attachment::Loop { device, .. } => device,
        }
    }
}

/// The file recording an attachment's device (`WORK_DIR.device`), so that a restarted
/// rdbd-ha (or an operator, or a fencing script) can undo an attachment whose process died.
pub fn state_file(work_dir: &Path) -> PathBuf {
    work_dir.with_extension("device")
}

/// The nbdfuse pid file of an attachment (`WORK_DIR.nbdfuse.pid`).
pub fn pid_file(work_dir: &Path) -> PathBuf {
    work_dir.with_extension("nbdfuse.pid")
}

/// Attaches `uri` on this host; `work_dir` holds the nbdfuse mount when that path is
/// taken. The device is recorded in [`state_file`].
pub fn attach(uri: &str, work_dir: &Path, timeout: Duration) -> Result<Attachment, String> {
    attach_with(&AttachHost::default(), uri, work_dir, timeout)
}

/// [`attach`] with the devices and programs of `host`.
pub fn attach_with(
    host: &AttachHost,
    uri: &str,
    work_dir: &Path,
    timeout: Duration,
) -> Result<Attachment, String> {
    let a = attach_device(host, uri, work_dir, timeout)?;
    let device = a.device().display().to_string();
    let identity = loop_identity(host, &device, timeout).unwrap_or_default();
    let _ = std::fs::write(state_file(work_dir), format!("{device} {identity}\n"));
    Ok(a)
}

/// The kernel path: `nbd-client [-unix] HOST|SOCKET [PORT] -N EXPORT -b BLOCK DEVICE`
/// on the first free `/dev/nbdN`, when there is one, nbd-client is installed and the URI
/// is one nbd-client can take. None: use nbdfuse + losetup.
fn attach_kernel(
    host: &AttachHost,
    uri: &str,
    timeout: Duration,
) -> Option<Result<Attachment, String>> {
    let program = host.find_program("nbd-client")?;
    let device = host.free_nbd_device()?;
    let args = nbd_client_args(uri)?;
    let mut argv = vec![program.display().to_string()];
    argv.extend(args);
    argv.push(device.display().to_string());
    let f = run(&argv, &[], timeout);
    Some(if f.success() {
        Ok(Attachment::Kernel { device })
    } else {
        Err(format!("nbd-client {}: {}", device.display(), f.describe()))
    })
}

fn attach_device(
    host: &AttachHost,
    uri: &str,
    work_dir: &Path,
    timeout: Duration,
) -> Result<Attachment, String> {
    if let Some(result) = attach_kernel(host, uri, timeout) {
        return result;
    }
    let fuse_dir = work_dir.to_path_buf();
    std::fs::create_dir_all(&fuse_dir).map_err(|e| format!("mkdir {}: {e}", fuse_dir.display()))?;
    let pidfile = pid_file(work_dir);
    let _ = std::fs::remove_file(&pidfile);
    let file = fuse_dir.join("disk");
    let mut nbdfuse = Command::new(host.program("nbdfuse"))
        .arg("-P")
        .arg(&pidfile)
        .arg(&file)
        .arg(uri)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("nbdfuse: {e} (install libnbd-bin)"))?;
    let start = Instant::now();
    while !pidfile.exists() {
        if let Ok(Some(status)) = nbdfuse.try_wait() {
            return Err(format!("nbdfuse {uri} exited: {status}"));
        }
        if start.elapsed() > timeout {
            let _ = nbdfuse.kill();
            let _ = nbdfuse.wait();
            return Err(format!("nbdfuse {uri} did not come up within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let f = run(
        &[
            host.program("losetup"),
            "-f".into(),
            "--show".into(),
            file.display().to_string(),
        ],
        &[],
        timeout,
    );
    match f {
        Finished::Exit {
            code: 0, stdout, ..
        } => Ok(Attachment::Loop {
            device: PathBuf::from(stdout.trim()),
            fuse_dir,
            nbdfuse,
        }),
        other => {
            let _ = run(
                &[
                    host.program("fusermount3"),
                    "-u".into(),
                    fuse_dir.display().to_string(),
                ],
                &[],
                timeout,
            );
            let _ = nbdfuse.kill();
            let _ = nbdfuse.wait();
            Err(format!("losetup {}: {}", file.display(), other.describe()))
        }
    }
}

/// Detaches (the file system must be unmounted); `work_dir` as given to [`attach`].
pub fn detach(a: Attachment, work_dir: &Path, timeout: Duration) -> Result<(), String> {
    detach_with(&AttachHost::default(), a, work_dir, timeout)
}

/// [`detach`] with the programs of `host`.
pub fn detach_with(
    host: &AttachHost,
    a: Attachment,
    work_dir: &Path,
    timeout: Duration,
) -> Result<(), String> {
    detach_device(host, a, timeout)?;
    let _ = std::fs::remove_file(state_file(work_dir));
    let _ = std::fs::remove_file(pid_file(work_dir));
    Ok(())
}

fn detach_device(host: &AttachHost, a: Attachment, timeout: Duration) -> Result<(), String> {
    match a {
        Attachment::Kernel { device } => {
            let f = run(
                &[
                    host.program("nbd-client"),
                    "-d".into(),
                    device.display().to_string(),
                ],
                &[],
                timeout,
            );
            f.success()
                .then_some(())
                .ok_or_else(|| format!("nbd-client -d: {}", f.describe()))
        }
        Attachment::Loop {
            device,
            fuse_dir,
            mut nbdfuse,
        } => {
            let f = run(
                &[
                    host.program("losetup"),
                    "-d".into(),
                    device.display().to_string(),
                ],
                &[],
                timeout,
            );
            if !f.success() {
                return Err(format!("losetup -d {}: {}", device.display(), f.describe()));
            }
            // losetup -d only marks a busy device for release: wait until the kernel lets
            // go of the FUSE file, or the unmount below fails with EBUSY.
            let backing = host.loop_backing_file(&device);
            let start = Instant::now();
            while backing.as_ref().is_some_and(|b| b.exists()) && start.elapsed() < timeout {
                std::thread::sleep(Duration::from_millis(20));
            }
            let dir = fuse_dir.display().to_string();
            let mut unmounted = false;
            for _ in 0..50 {
                if run(
                    &[host.program("fusermount3"), "-u".into(), dir.clone()],
                    &[],
                    timeout,
                )
                .success()
                {
                    unmounted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !unmounted {
                // Last resort: detach lazily so no dead mount is left behind.
                let _ = run(
                    &[host.program("fusermount3"), "-u".into(), "-z".into(), dir],
                    &[],
                    timeout,
                );
            }
            let start = Instant::now();
            while start.elapsed() < timeout {
                if let Ok(Some(_)) = nbdfuse.try_wait() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = nbdfuse.kill();
            let _ = nbdfuse.wait();
            Ok(())
        }
    }
}

/// The `MAJ:MIN` of the file system mounted at `dir` (from /proc/self/mountinfo).
fn mount_dev(dir: &Path) -> Option<String> {
    let want = dir.display().to_string().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(4) == Some(&want.as_str())).then(|| f.get(2).map(|s| s.to_string()))?
    })
}

/// `BACK-MAJ:MIN BACK-INO` of a bound loop device (None when it is not a bound loop).
fn loop_identity(host: &AttachHost, device: &str, timeout: Duration) -> Option<String> {
    if !device.starts_with("/dev/loop") {
        return None;
    }
    let losetup = host.program("losetup");
    let argv = [&losetup, "-l", "-n", "-O", "BACK-MAJ:MIN,BACK-INO", device];
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match run(&argv, &[], timeout) {
        Finished::Exit {
            code: 0, stdout, ..
        } => {
            let id = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
            (!id.is_empty()).then_some(id)
        }
        _ => None,
    }
}

/// Undoes an attachment left behind by a process that died (found through
/// [`state_file`]): detaches the device, unmounts the FUSE directory lazily and kills the
/// recorded nbdfuse. Does nothing when no state file exists.
pub fn detach_stale(work_dir: &Path, timeout: Duration) -> Result<(), String> {
    detach_stale_with(&AttachHost::default(), work_dir, timeout)
}

/// [`detach_stale`] with the devices and programs of `host`.
pub fn detach_stale_with(
    host: &AttachHost,
    work_dir: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let state = state_file(work_dir);
    let Ok(text) = std::fs::read_to_string(&state) else {
        return Ok(());
    };
    let mut words = text.split_whitespace();
    let device = words.next().unwrap_or_default().to_string();
    let recorded: String = words.collect::<Vec<_>>().join(" ");
    // Device names are recycled: touch the device only if it is still bound to the very
    // file we attached (same backing device and inode).
    // The FUSE mount at work_dir (alive or dead) must be the one the loop reads from.
    let ours = device.starts_with("/dev/loop")
        && !recorded.is_empty()
        && loop_identity(host, &device, timeout).is_some_and(|now| now == recorded)
        && mount_dev(work_dir)
            .is_some_and(|dev| recorded.split_whitespace().next() == Some(dev.as_str()));
    if host.is_nbd_device(Path::new(&device)) {
        let f = run(
            &[host.program("nbd-client"), "-d".into(), device.clone()],
            &[],
            timeout,
        );
        if !f.success() {
            return Err(format!("nbd-client -d {device}: {}", f.describe()));
        }
    } else if device.starts_with("/dev/loop") {
        if ours {
            let f = run(
                &[host.program("losetup"), "-d".into(), device.clone()],
                &[],
                timeout,
            );
            if !f.success() {
                return Err(format!("losetup -d {device}: {}", f.describe()));
            }
        }
        let _ = run(
            &[
                host.program("fusermount3"),
                "-u".into(),
                "-z".into(),
                work_dir.display().to_string(),
            ],
            &[],
            timeout,
        );
        if let Some(pid) = std::fs::read_to_string(pid_file(work_dir))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let is_nbdfuse = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "nbdfuse");
            if is_nbdfuse {
                // SAFETY: kill(2) on the nbdfuse our own earlier incarnation started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(pid_file(work_dir));
    Ok(())
}
