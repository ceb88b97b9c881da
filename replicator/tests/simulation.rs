//! The deterministic simulation of two nodes (see `sim/mod.rs`): thousands of seeded random
//! schedules with partitions, connection drops, crashes, failovers and split brains; the
//! invariants of `sim/check.rs` are checked throughout.
//!
//! - `RDBD_SIM_SEEDS=N`: run N seeds (default 2000).
//! - `RDBD_SIM_SEED=S`: replay seed S only and print its trace tail.
//!
//! A failure prints the seed and the last events.

mod sim;

use std::time::Instant;

use rdbd_types::{ConnState, Protocol, Role};
use sim::{run_seed, Bug, SimConfig, World};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn random_schedules_keep_the_invariants() {
    if let Some(seed) = env_u64("RDBD_SIM_SEED") {
        match run_seed(SimConfig::new(seed)) {
            Ok(w) => println!("seed {seed} ok: {} events, {:?}", w.events, w.ghost.stats),
            Err(f) => panic!("seed {} failed: {}", f.seed, f.report),
        }
        return;
    }
    let seeds = env_u64("RDBD_SIM_SEEDS").unwrap_or(2000);
    let start = Instant::now();
    let mut total = sim::check::Stats::default();
    let mut events = 0;
    for seed in 0..seeds {
        match run_seed(SimConfig::new(seed)) {
            Ok(w) => {
                let s = w.ghost.stats;
                events += w.events;
                total.writes_acked += s.writes_acked;
                total.promotions_checked += s.promotions_checked;
                total.split_brains += s.split_brains;
                total.resyncs += s.resyncs;
                total.coverage_checks += s.coverage_checks;
                total.crashes += s.crashes;
            }
            Err(f) => panic!(
                "seed {} failed (replay: RDBD_SIM_SEED={} cargo test -p rdbd-replicator --test simulation): {}",
                f.seed, f.seed, f.report
            ),
        }
    }
    println!(
        "{seeds} seeds, {events} events in {:.1?}: {total:?}",
        start.elapsed()
    );
    // The schedules must exercise what the invariants are about.
    assert!(
        total.promotions_checked * 4 > seeds,
        "failovers were exercised"
    );
    assert!(
        total.split_brains * 4 > seeds,
        "split brains were exercised"
    );
    assert!(total.resyncs > seeds, "resyncs were exercised");
    assert!(total.coverage_checks > seeds, "bitmap coverage was checked");
    assert!(total.crashes > seeds, "crashes were exercised");
}

#[test]
fn same_seed_same_run() {
    let a = run_seed(SimConfig::new(42)).map(|w| (w.events, w.now, w.nodes[0].disk.contents()));
    let b = run_seed(SimConfig::new(42)).map(|w| (w.events, w.now, w.nodes[0].disk.contents()));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// Runs seeds with `bug` until the checker fails; returns the failing seed and its report.
fn find_bug(bug: Bug, protocol: Option<Protocol>, max_seeds: u64) -> Option<(u64, String)> {
    (0..max_seeds).find_map(|seed| {
        let mut cfg = SimConfig::new(seed);
        cfg.bug = Some(bug);
        cfg.protocol = protocol;
        run_seed(cfg).err().map(|f| (f.seed, f.report))
    })
}

#[test]
fn acking_protocol_c_before_the_peer_is_caught() {
    let found = find_bug(Bug::AckProtocolCEarly, Some(Protocol::C), 300);
    let (seed, report) = found.expect("the early protocol C ack was not detected in 300 seeds");
    println!(
        "caught at seed {seed}: {}",
        report.lines().next().unwrap_or("")
    );
    assert!(report.contains("acknowledged write lost"), "{report}");
}

#[test]
fn a_secondary_that_does_not_flush_on_barriers_is_caught() {
    let found = find_bug(Bug::NoFlushOnBarrier, Some(Protocol::C), 500);
    let (seed, report) = found.expect("the missing flush was not detected in 500 seeds");
    println!(
        "caught at seed {seed}: {}",
        report.lines().next().unwrap_or("")
    );
}

#[test]
fn forgetting_the_transfer_log_on_connection_loss_is_caught() {
    let found = find_bug(Bug::ForgetTransferLogOnLoss, None, 300);
    let (seed, report) = found.expect("the lost out-of-sync marks were not detected in 300 seeds");
    println!(
        "caught at seed {seed}: {}",
        report.lines().next().unwrap_or("")
    );
}

/// A script: partition the Primary, write three blocks, heal; the resync moves exactly
/// those blocks, and both disks end equal.
#[test]
fn a_partitioned_primary_resyncs_exactly_the_blocks_it_wrote() {
    let mut cfg = SimConfig::new(7);
    cfg.faults = false;
    cfg.client = false;
    cfg.protocol = Some(Protocol::C);
    let mut w = World::new(cfg);
    w.start();
    assert!(
        w.run_until(3000, World::converged),
        "initial sync: {}",
        w.describe()
    );
    assert_eq!(w.role_of(0), Some(Role::Primary));
    let before = w.nodes[1].disk.contents();

    w.partition(200);
    let apart = |w: &World| {
        w.nodes
            .iter()
            .all(|n| n.sm.state().conn == ConnState::WFConnection)
    };
    assert!(w.run_until(w.now + 150, apart), "{}", w.describe());
    let ids: Vec<u64> = [1, 5, 6].iter().map(|&b| w.write_block(0, b)).collect();
    assert_eq!(w.nodes[0].weight(), 3, "the writes are set out of sync");

    let syncing = |w: &World| w.nodes[1].sm.state().conn == ConnState::SyncTarget;
    assert!(w.run_until(w.now + 2000, syncing), "{}", w.describe());
    assert_eq!(
        w.nodes[1].weight(),
        3,
        "the target resyncs exactly the written blocks"
    );
    assert!(
        w.run_until(w.now + 2000, World::converged),
        "{}",
        w.describe()
    );
    let after = w.nodes[1].disk.contents();
    assert_eq!(after, w.nodes[0].disk.contents());
    for (b, id) in [1, 5, 6].into_iter().zip(ids) {
        assert_eq!(after[b], id, "block {b}");
    }
    let untouched = |b: &usize| ![1, 5, 6].contains(b);
    assert!((0..before.len())
        .filter(untouched)
        .all(|b| before[b] == after[b]));
    assert!(w.failure.is_none(), "{:?}", w.failure);
}
