# Shared helpers of the benchmark scripts (sourced, not run).
# Sets: bin (release binaries), work (scratch dir, removed on exit).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --bins --quiet
bin="$PWD/target/release"
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rdbd-bench.XXXXXX")
bench_pids=()
bench_nodes=()
bench_cleanup() {
  # Nodes set up inside $(...) (standalone_node) are not in bench_nodes: take the run dirs.
  local runs=("$work"/run-*)
  local nodes=("${bench_nodes[@]}" "${runs[@]##*/run-}")
  for n in $(printf '%s\n' "${nodes[@]}" | sort -u); do
    [ -d "$work/run-$n" ] || continue
    "$bin/rdbdadm" -c "$work/$n.conf" --node "$n" --run-dir "$work/run-$n" down all >/dev/null 2>&1 || true
    "$bin/rdbdadm" -c "$work/$n.conf" --node "$n" --run-dir "$work/run-$n" shutdown >/dev/null 2>&1 || true
    # A daemon that did not stop must not outlive its scratch dir.
    pid=$(cat "$work/run-$n/rdbd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

# make_disk FILE SIZE: a fully allocated file of random data.
make_disk() {
  fallocate -l "$2" "$1"
  dd if=/dev/urandom of="$1" bs=1M count=$(( $(stat -c %s "$1") / 1048576 )) conv=notrunc status=none
}

# standalone_node NAME DISK [DISK-OPTIONS]: config, create-md, up, primary; prints the NBD URI.
standalone_node() {
  local name=$1 disk=$2 opts=${3:-}
  cat > "$work/$name.conf" <<CONF
resource $name {
  disk { $opts }
  on $name { device /dev/drbd0; disk $disk; meta-disk internal; }
}
CONF
  bench_nodes+=("$name")
  local adm=("$bin/rdbdadm" -c "$work/$name.conf" --node "$name" --run-dir "$work/run-$name")
  "${adm[@]}" create-md --force "$name" >/dev/null 2>&1
  "${adm[@]}" up "$name"
  "${adm[@]}" primary --force "$name"
  "${adm[@]}" nbd-uri "$name"
}

# fio_row OUT.json ENGINE-ARGS... : runs fio with the common options of every row.
# Needs: rw bs qd runtime size set by the caller.
fio_row() {
  local out=$1; shift
  fio --name=job --rw="$rw" --bs="$bs" --iodepth="$qd" --runtime="$runtime" --time_based \
    --size="$size" --randrepeat=0 --group_reporting --output-format=json --output="$out" "$@" >/dev/null
}

# fio_result OUT.json -> "IOPS MiB/s" of the job's read or write side (by $rw).
fio_result() {
  python3 - "$1" "$rw" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "write" if "write" in sys.argv[2] else "read"
print(f"{j[side]['iops']:.0f} {j[side]['bw_bytes']/1048576:.1f}")
PY
}
