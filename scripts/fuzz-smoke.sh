#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short time (default 20 s each). cargo-fuzz
# needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
#   scripts/fuzz-smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
mkdir -p target
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "== fuzz $target (${seconds}s)"
  if ! cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 > "target/fuzz-$target.log" 2>&1; then
    tail -40 "target/fuzz-$target.log"
    echo "fuzz target $target failed"
    exit 1
  fi
  tail -1 "target/fuzz-$target.log"
done
