#!/usr/bin/env bash
# rdbd's whole test suite on a fresh Debian machine: installs what it needs, then
# format, lint, and every test (unit, proptest, real NBD clients, real drbdmeta,
# real processes and crashes). Benchmarks are separate (benches/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries used by the integration tests)"
cargo build --workspace --bins --locked
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast --profile ci
echo "== fuzz smoke (every decoder's cargo-fuzz target, 10 s each)"
scripts/fuzz-smoke.sh 10
