//! `examples/ha/`: the TOML and the heartbeat files describe the same cluster.

use std::path::{Path, PathBuf};

use rdbd_ha::config::{Config, ResourceKind};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ha")
}

/// The resource kinds with script paths reduced to names and monitor flags dropped.
fn shape(c: &Config) -> Vec<String> {
    c.groups[0]
        .resources
        .iter()
        .map(|r| match &r.kind {
            ResourceKind::Script { name, args, .. } => {
                format!(
                    "script {} {:?}",
                    name.rsplit('/').next().unwrap_or(name),
                    args
                )
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn toml_and_heartbeat_files_agree() {
    let (toml, notes) = Config::load(&examples().join("rdbd-ha.toml")).unwrap();
    assert!(notes.is_empty());
    let (hb, hb_notes) = Config::load(&examples().join("ha.d")).unwrap();
    assert!(hb_notes.iter().any(|n| n.contains("no stonith")));
    assert_eq!(shape(&toml), shape(&hb));
    assert_eq!(toml.timings, hb.timings);
    assert_eq!(toml.auto_failback, hb.auto_failback);
    assert_eq!(toml.ping_nodes, hb.ping_nodes);
    assert_eq!(toml.groups[0].preferred_node, hb.groups[0].preferred_node);
    assert_eq!(
        toml.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
        hb.nodes.iter().map(|n| &n.name).collect::<Vec<_>>()
    );
    assert!(!toml.stonith.is_empty(), "the TOML example fences");
    assert_eq!(toml.local_node("data-1-2").unwrap(), 1);
}

#[test]
fn example_rsdata_is_an_lsb_script() {
    let out = std::process::Command::new("sh")
        .arg(examples().join("ha.d/resource.d/rsdata"))
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown action: exit 2");
}
