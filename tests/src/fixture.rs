//! Ready-made single-node setups.

use std::path::{Path, PathBuf};

use crate::node::Node;

/// A standalone resource `r0` on a file of `size_mib` MiB, created, up and Primary.
pub struct Standalone {
    /// The node. Declared first so that it is dropped (its daemon stopped) before
    /// the directory holding its configuration and run directory goes away.
    pub node: Node,
    /// The backing file.
    pub disk: PathBuf,
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

/// A directory for backing files that supports O_DIRECT (not tmpfs).
pub fn scratch_dir() -> tempfile::TempDir {
    let base = Path::new("/var/tmp");
    tempfile::Builder::new()
        .prefix("rdbd-test.")
        .tempdir_in(base)
        .expect("temp dir in /var/tmp")
}

/// Writes a one-resource configuration and returns its path.
pub fn standalone_config(dir: &Path, disk: &Path, extra_host_lines: &str) -> PathBuf {
    let config = dir.join("rdbd.conf");
    std::fs::write(
        &config,
        format!(
            "resource r0 {{\n  on alice {{\n    device /dev/drbd0;\n    disk {};\n    address 127.0.0.1:7789;\n    meta-disk internal;\n{extra_host_lines}  }}\n}}\n",
            disk.display()
        ),
    )
    .expect("write config");
    config
}

impl Standalone {
    /// Creates the backing file, meta-data, brings `r0` up and makes it Primary.
    pub fn up(size_mib: u64) -> Standalone {
        let s = Standalone::configured(size_mib);
        s.node.adm_ok(&["create-md", "--force", "r0"]);
        s.node.adm_ok(&["up", "r0"]);
        s.node.adm_ok(&["primary", "--force", "r0"]);
        s
    }

    /// Creates the backing file and configuration only.
    pub fn configured(size_mib: u64) -> Standalone {
        let dir = scratch_dir();
        let disk = dir.path().join("alice.img");
        let f = std::fs::File::create(&disk).expect("create backing file");
        f.set_len(size_mib << 20).expect("size backing file");
        let config = standalone_config(dir.path(), &disk, "");
        let node = Node::new(dir.path(), "alice", &config);
        Standalone { dir, node, disk }
    }

    /// The export's size as the daemon reports it.
    pub fn node_size_bytes(&self) -> u64 {
        let out = crate::tools::run_ok(
            std::process::Command::new("nbdinfo")
                .arg("--size")
                .arg(self.uri()),
        );
        crate::tools::stdout(&out)
            .trim()
            .parse()
            .expect("nbdinfo --size")
    }

    /// The export's URI.
    pub fn uri(&self) -> String {
        self.node.nbd_uri("r0")
    }
}
