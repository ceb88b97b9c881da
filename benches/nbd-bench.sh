#!/usr/bin/env bash
# NBD export benchmark: fio (nbd engine, unix socket) against rdbd, qemu-nbd
# (--cache=none --aio=io_uring) and nbdkit (file plugin) on the same backing file, in
# one run, plus local fio (io_uring, O_DIRECT) on the file as the physical limit.
# Prints a table with IOPS, MiB/s and the ratios. On a shared machine the load changes
# between runs: every row runs the four targets `--rounds` times, interleaved (the order
# rotates), and reports each target's median.
#
#   benches/nbd-bench.sh [--runtime SECONDS] [--size SIZE] [--rounds N]
runtime=10
disk_size=1G
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) disk_size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/lib.sh"

img="$work/disk.img"
make_disk "$img" "$disk_size"
rdbd_uri=$(standalone_node bench "$img")
# rdbd exports the data area (internal meta-data takes the end): every target uses that many bytes.
size=$(nbdinfo --size "$rdbd_uri")

qemu-nbd --cache=none --aio=io_uring --format=raw --shared=8 --persistent \
  --socket="$work/qemu.sock" "$img" & bench_pids+=($!)
nbdkit --foreground --unix "$work/nbdkit.sock" --exit-with-parent file "$img" cache=none & bench_pids+=($!)
for s in qemu.sock nbdkit.sock; do
  for _ in $(seq 100); do [ -S "$work/$s" ] && break; sleep 0.05; done
done

rows=("randwrite 4k 1" "randwrite 4k 32" "randread 4k 1" "randread 4k 32" "write 1M 8" "read 1M 8")
echo "qemu-nbd runs with --cache=none (O_DIRECT, the like-for-like peer); nbdkit 1.32's file plugin"
echo "has no O_DIRECT (cache=none only drops pages), so its numbers include the page cache."
printf '%-20s %11s %10s %10s %10s %10s %14s %14s %11s\n' workload "local IOPS" "rdbd IOPS" "rdbd MiB/s" qemu-nbd nbdkit "rdbd/qemu-nbd" "rdbd/best" "rdbd/local"
median() { tr ' ' '\n' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
targets=(local rdbd qemu-nbd nbdkit)
for row in "${rows[@]}"; do
  read -r rw bs qd <<<"$row"
  declare -A iops=() mib=() all_iops=() all_mib=()
  for ((round = 0; round < rounds; round++)); do
    for i in 0 1 2 3; do
      t=${targets[$(( (i + round) % 4 ))]}
      out="$work/$t.json"
      case "$t" in
        local) fio_row "$out" --ioengine=io_uring --direct=1 --filename="$img" ;;
        rdbd) fio_row "$out" --ioengine=nbd --uri="$rdbd_uri" ;;
        qemu-nbd) fio_row "$out" --ioengine=nbd --uri="nbd+unix:///?socket=$work/qemu.sock" ;;
        nbdkit) fio_row "$out" --ioengine=nbd --uri="nbd+unix:///?socket=$work/nbdkit.sock" ;;
      esac
      read -r one_iops one_mib <<<"$(fio_result "$out")"
      all_iops[$t]+=" $one_iops"
      all_mib[$t]+=" $one_mib"
    done
  done
  for t in "${targets[@]}"; do
    iops[$t]=$(echo ${all_iops[$t]} | median)
    mib[$t]=$(echo ${all_mib[$t]} | median)
  done
  python3 - "$rw $bs QD$qd" "${iops[local]}" "${iops[rdbd]}" "${mib[rdbd]}" "${iops[qemu-nbd]}" "${iops[nbdkit]}" <<'PY'
import sys
row, local, rdbd, mib, qemu, nbdkit = sys.argv[1], *map(float, sys.argv[2:])
print(f"{row:<20} {local:>11.0f} {rdbd:>10.0f} {mib:>10.1f} {qemu:>10.0f} {nbdkit:>10.0f} {rdbd/qemu:>13.2f}x {rdbd/max(qemu, nbdkit):>13.2f}x {rdbd/local:>10.2f}x")
PY
done
