#!/usr/bin/env bash
# NBD export benchmark: fio (nbd engine, unix socket) against rdbd, qemu-nbd
# (--cache=none --aio=io_uring) and nbdkit (file plugin) on the same backing file, in
# one run, plus local fio (io_uring, O_DIRECT) on the file as the physical limit.
# Prints a table with IOPS, MiB/s and the ratios.
#
#   benches/nbd-bench.sh [--runtime SECONDS] [--size SIZE] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=10
size=1G
dir=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh >/dev/null
cargo build --release --bins --quiet
bin="$PWD/target/release"
work=$(mktemp -d "$dir/rdbd-bench.XXXXXX")
pids=()
cleanup() {
  "$bin/rdbdadm" -c "$work/rdbd.conf" --node bench --run-dir "$work/run" shutdown >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

img="$work/disk.img"
# A fully allocated file, so no target pays for block allocation.
fallocate -l "$size" "$img"
dd if=/dev/urandom of="$img" bs=1M count=$(( $(stat -c %s "$img") / 1048576 )) conv=notrunc status=none

cat > "$work/rdbd.conf" <<CONF
resource bench {
  on bench { device /dev/drbd0; disk $img; meta-disk internal; }
}
CONF
adm() { "$bin/rdbdadm" -c "$work/rdbd.conf" --node bench --run-dir "$work/run" "$@"; }
adm create-md --force bench >/dev/null
adm up bench
adm primary --force bench
rdbd_uri=$(adm nbd-uri bench)
# rdbd exports the data area: benchmark every target on that many bytes.
data_bytes=$(nbdinfo --size "$rdbd_uri")

qemu-nbd --cache=none --aio=io_uring --format=raw --shared=8 --persistent \
  --socket="$work/qemu.sock" "$img" & pids+=($!)
nbdkit --foreground --unix "$work/nbdkit.sock" --exit-with-parent file "$img" cache=none & pids+=($!)
for s in qemu.sock nbdkit.sock; do
  for _ in $(seq 100); do [ -S "$work/$s" ] && break; sleep 0.05; done
done

run_fio() { # target rw bs iodepth -> json file
  local target=$1 rw=$2 bs=$3 qd=$4 out=$5
  local common=(--name=job --rw="$rw" --bs="$bs" --iodepth="$qd" --runtime="$runtime" --time_based
    --size="$data_bytes" --randrepeat=0 --group_reporting --output-format=json --output="$out")
  case "$target" in
    local) fio "${common[@]}" --ioengine=io_uring --direct=1 --filename="$img" ;;
    rdbd) fio "${common[@]}" --ioengine=nbd --uri="$rdbd_uri" ;;
    qemu-nbd) fio "${common[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$work/qemu.sock" ;;
    nbdkit) fio "${common[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$work/nbdkit.sock" ;;
  esac >/dev/null
}

rows=("randwrite 4k 1" "randwrite 4k 32" "randread 4k 1" "randread 4k 32" "write 1M 8" "read 1M 8")
targets=(local rdbd qemu-nbd nbdkit)
results="$work/results.tsv"
: > "$results"
for row in "${rows[@]}"; do
  set -- $row
  for t in "${targets[@]}"; do
    out="$work/$t-$1-$2-$3.json"
    run_fio "$t" "$1" "$2" "$3" "$out"
    python3 - "$out" "$t" "$1" "$2" "$3" >> "$results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "write" if "write" in sys.argv[3] else "read"
print("\t".join([sys.argv[2], f"{sys.argv[3]} {sys.argv[4]} QD{sys.argv[5]}", f"{j[side]['iops']:.0f}", f"{j[side]['bw_bytes']/1048576:.1f}"]))
PY
  done
done

python3 - "$results" <<'PY'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    t, row, iops, mib = line.rstrip("\n").split("\t")
    rows.setdefault(row, {})[t] = (float(iops), float(mib))
print(f"{'workload':<20} {'local IOPS':>11} {'rdbd IOPS':>10} {'rdbd MiB/s':>10} {'qemu-nbd':>10} {'nbdkit':>10} {'rdbd/best peer':>15} {'rdbd/local':>11}")
for row, v in rows.items():
    best = max(v["qemu-nbd"][0], v["nbdkit"][0])
    print(f"{row:<20} {v['local'][0]:>11.0f} {v['rdbd'][0]:>10.0f} {v['rdbd'][1]:>10.1f} {v['qemu-nbd'][0]:>10.0f} {v['nbdkit'][0]:>10.0f} {v['rdbd'][0]/best:>14.2f}x {v['rdbd'][0]/v['local'][0]:>10.2f}x")
PY
