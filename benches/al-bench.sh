#!/usr/bin/env bash
# Activity-log cost: fio 4k random writes (QD32) through rdbd's NBD export over a
# working set smaller and larger than al-extents x 4 MiB, with AL updates on and
# off (`al-updates no`: no AL transactions, the baseline), in one run, as ratios.
#
#   benches/al-bench.sh [--runtime SECONDS] [--al-extents N]
runtime=10
al_extents=67
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --al-extents) al_extents=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/lib.sh"

hot_mib=$(( al_extents * 4 ))
small=$(( hot_mib / 2 ))M
large=$(( hot_mib * 4 ))M
make_disk "$work/al.img" "$(( hot_mib * 4 + 64 ))M"
cp --sparse=never "$work/al.img" "$work/noal.img"
al_uri=$(standalone_node al "$work/al.img" "al-extents $al_extents;")
noal_uri=$(standalone_node noal "$work/noal.img" "al-extents $al_extents; al-updates no;")

rw=randwrite bs=4k qd=32
printf 'al-extents %s (%s MiB hot)\n' "$al_extents" "$hot_mib"
printf '%-28s %12s %12s %8s\n' "working set" "AL IOPS" "no-AL IOPS" ratio
for size in "$small" "$large"; do
  fio_row "$work/al.json" --ioengine=nbd --uri="$al_uri"
  fio_row "$work/noal.json" --ioengine=nbd --uri="$noal_uri"
  read -r a _ <<<"$(fio_result "$work/al.json")"
  read -r n _ <<<"$(fio_result "$work/noal.json")"
  python3 -c "import sys; a,n=float(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[1]:<28} {a:>12.0f} {n:>12.0f} {a/n:>7.2f}x')" "$size" "$a" "$n"
done
