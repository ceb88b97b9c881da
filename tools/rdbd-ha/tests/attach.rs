//! The attach step's two paths with stub programs and a fake device directory.
//!
//! STAND-IN: the machine these tests were written on has no `nbd` kernel module, so no
//! `/dev/nbd*`, and the real `nbd-client` cannot attach anything. The kernel path is
//! therefore exercised up to the command line: a stub `nbd-client` records its argv
//! while an [`AttachHost`] reports `DEV/nbd0` present. The nbdfuse + losetup fallback
//! runs for real in `tests/tests/ha_standalone.rs`; here its stubs only show that it is
//! the path taken when no NBD device (or no nbd-client) is there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdbd_ha::group::attach::{
    attach_with, detach_stale_with, detach_with, state_file, AttachHost, Attachment,
};

const T: Duration = Duration::from_secs(5);

/// Appends `[arg]...` for one call to `DIR/NAME.argv`.
const RECORD: &str = r#"d="$(dirname "$0")/.."; for a in "$@"; do printf '[%s]' "$a"; done >> "$d/$(basename "$0").argv"; echo >> "$d/$(basename "$0").argv"
"#;

struct Host {
    dir: tempfile::TempDir,
    host: AttachHost,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["dev", "sys", "bin", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let host = AttachHost {
            dev_dir: d.join("dev"),
            sys_block_dir: d.join("sys"),
            search_path: Some(d.join("bin").into_os_string()),
        };
        Host { dir, host }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn stub(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(&format!("bin/{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{RECORD}{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The recorded calls of stub `name`, one line each.
    fn calls(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(&format!("{name}.argv")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn device(&self, n: &str) -> PathBuf {
        let p = self.path(&format!("dev/{n}"));
        std::fs::write(&p, "").unwrap();
        p
    }
}

fn bracket(args: &[&str]) -> String {
    args.iter().map(|a| format!("[{a}]")).collect()
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn kernel_nbd_client_gets_the_uri_export_block_size_and_a_free_device() {
    let h = Host::new();
    h.stub(
        "nbd-client",
        "[ -f \"$d/nbd-client-fails\" ] && { echo 'E: could not connect' >&2; exit 1; }\nexit 0\n",
    );
    let nbd0 = h.device("nbd0");
    let work = h.path("run/fuse-r0");

    // A UNIX-socket export (what `rdbdadm nbd-uri` prints for a local export).
    let a = attach_with(&h.host, "nbd+unix:///r0?socket=/run/rdbd/r0.sock", &work, T).unwrap();
    assert!(
        matches!(&a, Attachment::Kernel { device } if *device == nbd0),
        "{a:?}"
    );
    assert_eq!(
        h.calls("nbd-client"),
        vec![bracket(&[
            "-unix",
            "/run/rdbd/r0.sock",
            "-N",
            "r0",
            "-b",
            "4096",
            &show(&nbd0)
        ])]
    );
    let state = std::fs::read_to_string(state_file(&work)).unwrap();
    assert!(state.starts_with(&show(&nbd0)), "{state}");
    assert!(
        !work.exists(),
        "no nbdfuse mount directory on the kernel path"
    );

    // nbd0 is connected now (the kernel shows its pid): the next export gets nbd1.
    std::fs::create_dir_all(h.path("sys/nbd0")).unwrap();
    std::fs::write(h.path("sys/nbd0/pid"), "4242\n").unwrap();
    let nbd1 = h.device("nbd1");
    let work1 = h.path("run/fuse-data");
    let b = attach_with(&h.host, "nbd://10.0.0.7:10809/data", &work1, T).unwrap();
    assert_eq!(b.device(), nbd1);
    assert_eq!(
        h.calls("nbd-client")[1],
        bracket(&[
            "10.0.0.7",
            "10809",
            "-N",
            "data",
            "-b",
            "4096",
            &show(&nbd1)
        ])
    );

    // Detach: `nbd-client -d DEVICE`, state removed.
    detach_with(&h.host, a, &work, T).unwrap();
    assert_eq!(h.calls("nbd-client")[2], bracket(&["-d", &show(&nbd0)]));
    assert!(!state_file(&work).exists());
    // An attachment whose supervisor died is undone from its state file.
    drop(b);
    detach_stale_with(&h.host, &work1, T).unwrap();
    assert_eq!(h.calls("nbd-client")[3], bracket(&["-d", &show(&nbd1)]));
    assert!(!state_file(&work1).exists());

    // nbd-client failing is a failed step naming the device and nbd-client's words.
    std::fs::write(h.path("nbd-client-fails"), "").unwrap();
    std::fs::remove_file(h.path("sys/nbd0/pid")).unwrap();
    let e = attach_with(&h.host, "nbd://10.0.0.7/data", &work, T).unwrap_err();
    assert!(
        e.contains(&show(&nbd0)) && e.contains("could not connect"),
        "{e}"
    );
    assert_eq!(
        h.calls("nbd-client")[4],
        bracket(&[
            "10.0.0.7",
            "10809",
            "-N",
            "data",
            "-b",
            "4096",
            &show(&nbd0)
        ])
    );
}

/// nbdfuse writes its pid file and stays up; fusermount3 -u ends it; losetup -f --show
/// prints a loop device.
fn fallback_stubs(h: &Host) {
    h.stub("nbd-client", "exit 0\n");
    h.stub(
        "nbdfuse",
        "mkdir -p \"$(dirname \"$3\")\"; echo $$ > \"$2\"; exec sleep 30\n",
    );
    h.stub(
        "losetup",
        "case \"$1\" in -f) echo /dev/loop63 ;; -l) echo '0:99 12345' ;; esac\nexit 0\n",
    );
    h.stub(
        "fusermount3",
        "[ \"$1\" = -u ] && kill \"$(cat \"$2.nbdfuse.pid\")\"\nexit 0\n",
    );
}

#[test]
fn without_an_nbd_device_or_nbd_client_it_falls_back_to_nbdfuse_and_losetup() {
    let h = Host::new();
    fallback_stubs(&h);
    let uri = "nbd+unix:///r0?socket=/run/rdbd/r0.sock";
    let work = h.path("run/fuse-r0");
    // No DEV/nbd*: the kernel path is not taken, nbd-client never runs.
    let a = attach_with(&h.host, uri, &work, T).unwrap();
    let Attachment::Loop { device, .. } = &a else {
        panic!("expected the loop fallback, got {a:?}");
    };
    assert_eq!(device, Path::new("/dev/loop63"));
    assert!(h.calls("nbd-client").is_empty());
    let pidfile = h.path("run/fuse-r0.nbdfuse.pid");
    let disk = work.join("disk");
    assert_eq!(
        h.calls("nbdfuse"),
        vec![bracket(&["-P", &show(&pidfile), &show(&disk), uri])]
    );
    assert_eq!(
        h.calls("losetup")[0],
        bracket(&["-f", "--show", &show(&disk)])
    );
    detach_with(&h.host, a, &work, T).unwrap();
    let losetup = h.calls("losetup");
    assert_eq!(losetup.last().unwrap(), &bracket(&["-d", "/dev/loop63"]));
    assert_eq!(h.calls("fusermount3"), vec![bracket(&["-u", &show(&work)])]);

    // A /dev/nbd0 but no nbd-client installed: the fallback as well.
    let h = Host::new();
    fallback_stubs(&h);
    std::fs::remove_file(h.path("bin/nbd-client")).unwrap();
    h.device("nbd0");
    let work = h.path("run/fuse-r0");
    let a = attach_with(&h.host, uri, &work, T).unwrap();
    assert!(matches!(a, Attachment::Loop { .. }), "{a:?}");
    detach_with(&h.host, a, &work, T).unwrap();
}
