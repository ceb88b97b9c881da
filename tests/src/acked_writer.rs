//! The writer of the "no acknowledged write is lost" tests: a python3-libnbd client that
//! writes 4 KiB blocks one at a time (QD1), each stamped with its number, and records a
//! number only after its write returned (was acknowledged to the client).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::DEBIAN_PYTHON;

const SCRIPT: &str = r#"import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
log = open(sys.argv[2], "w")
for i in range(int(sys.argv[3])):
    block = (b"rdbd-block-%08d-" % i) * 200
    block = block + b"x" * (4096 - len(block))
    h.pwrite(block, i * 4096)
    log.write("%d\n" % i)
    log.flush()
"#;

/// A running writer.
pub struct AckedWriter {
    child: Child,
    acked_path: PathBuf,
    /// How many blocks it writes if nothing stops it.
    pub blocks: usize,
}

impl AckedWriter {
    /// Starts writing `blocks` blocks through `uri`; its files go in `dir`.
    pub fn start(dir: &Path, uri: &str, blocks: usize) -> AckedWriter {
        let script = dir.join("writer.py");
        let acked_path = dir.join("acked.txt");
        std::fs::write(&script, SCRIPT).unwrap();
        let child = Command::new(DEBIAN_PYTHON)
            .arg(&script)
            .arg(uri)
            .arg(&acked_path)
            .arg(blocks.to_string())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /usr/bin/python3 (python3-libnbd)");
        AckedWriter {
            child,
            acked_path,
            blocks,
        }
    }

    fn acked_lines(&self) -> usize {
        std::fs::read_to_string(&self.acked_path)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Waits until at least `n` writes were acknowledged.
    pub fn wait_acked(&mut self, n: usize) {
        let start = Instant::now();
        while self.acked_lines() < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the writer made no progress"
            );
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the writer ended early ({status}): is python3-libnbd installed?");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the writer to end (its server died) and returns the acknowledged blocks.
    pub fn acked(mut self) -> Vec<u64> {
        let _ = self.child.wait();
        std::fs::read_to_string(&self.acked_path)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

/// Panics unless every block in `acked` is in `data` (a copy of the device).
pub fn assert_acked_present(data: &[u8], acked: &[u64]) {
    for i in acked {
        let at = (*i as usize) * 4096;
        let want = format!("rdbd-block-{i:08}-");
        assert_eq!(
            &data[at..at + want.len()],
            want.as_bytes(),
            "acknowledged block {i} is missing on the new primary"
        );
    }
}
