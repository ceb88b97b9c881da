//! `examples/ha/rdbd.conf` is accepted by rdbdadm for both nodes and says what the
//! README promises (resource `data`, protocol C, internal meta-data).

use std::path::Path;
use std::process::Command;

use rdbd_tests::bins::bin;
use rdbd_tests::tools::{run_ok, stdout};

#[test]
fn example_rdbd_conf_parses_for_both_nodes() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ha/rdbd.conf");
    for node in ["data-1-1", "data-1-2"] {
        let out = run_ok(
            Command::new(bin("rdbdadm"))
                .arg("-c")
                .arg(&conf)
                .args(["--node", node, "dump", "data"]),
        );
        let text = stdout(&out);
        assert!(text.contains("resource data"), "{text}");
        assert!(text.contains("protocol         C;"), "{text}");
        assert!(text.contains("meta-disk        internal;"), "{text}");
        assert!(text.contains("after-sb-2pri    disconnect;"), "{text}");
    }
}
