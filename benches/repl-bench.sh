#!/usr/bin/env bash
# Replication cost: fio (nbd engine, unix socket) through the primary's NBD export of a
# standalone resource and of three replicated pairs on loopback (protocol A, B, C: nodes
# alice = Primary and bob = Secondary, each with its own backing file), in one run, as
# ratios against standalone, plus the latency each protocol adds at QD1.
# Default net/disk options except a fast initial sync (c-plan-ahead 0, resync-rate 1000M).
#
# By default every backing file is in the scratch directory, so the secondary's writes
# share the primary's disk: a disk-bound row then cannot exceed ~0.5x. A real peer has
# its own disk; `--peer-dir DIR` (e.g. /dev/shm) puts the secondaries' files elsewhere.
#
# On a shared machine the load changes between runs: every row runs all four targets
# `--rounds` times, interleaved (the order rotates), and reports each target's median.
#
# Under each row: the CPU time per I/O of fio, the primary's daemon and the secondary's
# daemon (all three share this machine's CPUs), from the median round.
#
# `--bin DIR` runs the rdbd / rdbdadm binaries in DIR instead of the fresh release build
# (to compare a saved build with the current one under the same load).
#
#   benches/repl-bench.sh [--runtime SECONDS] [--size SIZE] [--peer-dir DIR] [--rounds N] [--bin DIR]
runtime=10
disk_size=512M
peer_dir=
rounds=3
bin_override=
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) disk_size=$2; shift 2 ;;
    --peer-dir) peer_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --bin) bin_override=$(realpath "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/lib.sh"
bin=${bin_override:-$bin}
peer_dir=${peer_dir:-$work}
peer_files=$(mktemp -d "$peer_dir/rdbd-bench-peer.XXXXXX")
trap 'bench_cleanup; rm -rf "$peer_files"' EXIT

make_disk "$work/solo.img" "$disk_size"
solo_uri=$(standalone_node solo "$work/solo.img")

# One configuration for both replicating nodes: resources pa, pb, pc (protocol A, B, C).
port=$(( 20000 + RANDOM % 20000 ))
conf="$work/pair.conf"
echo 'common { disk { c-plan-ahead 0; resync-rate 1000M; } }' > "$conf"
minor=1
for p in A B C; do
  r=p${p,,}
  cp --sparse=never "$work/solo.img" "$work/$r-alice.img"
  cp --sparse=never "$work/solo.img" "$peer_files/$r-bob.img"
  cat >> "$conf" <<CONF
resource $r {
  net { protocol $p; }
  on alice { device /dev/drbd$minor; disk $work/$r-alice.img; address 127.0.0.1:$port; meta-disk internal; }
  on bob { device /dev/drbd$minor; disk $peer_files/$r-bob.img; address 127.0.0.1:$(( port + 1 )); meta-disk internal; }
}
CONF
  minor=$(( minor + 1 )); port=$(( port + 2 ))
done
bench_nodes+=(alice bob)
cp "$conf" "$work/alice.conf"; cp "$conf" "$work/bob.conf"
adm() { local n=$1; shift; "$bin/rdbdadm" -c "$conf" --node "$n" --run-dir "$work/run-$n" "$@"; }
declare -A uri=([solo]="$solo_uri")
for p in A B C; do
  r=p${p,,}
  for n in alice bob; do adm "$n" create-md --force "$r" >/dev/null 2>&1; adm "$n" up "$r"; done
  adm alice wait-connect --timeout 30 "$r" >/dev/null
  adm alice primary --force "$r"
  adm alice wait-sync --timeout 300 "$r" >/dev/null
  uri[$p]=$(adm alice nbd-uri "$r")
done
size=$(nbdinfo --size "${uri[solo]}")
echo "secondaries' backing files in $peer_dir ($(df --output=source "$peer_files" | tail -1))"

# CPU time (user + system, clock ticks) of the daemons serving target $1: "solo" or
# "primary secondary" (alice and bob serve the three pairs).
pid_of() { cat "$work/run-$1/rdbd.pid"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_ticks() {
  if [ "$1" = solo ]; then echo "$(ticks "$(pid_of solo)") 0"
  else echo "$(ticks "$(pid_of alice)") $(ticks "$(pid_of bob)")"; fi
}
# cpu_per_io OUT.json "P0 S0" "P1 S1": "fio/primary/secondary" CPU microseconds per I/O.
cpu_per_io() {
  # shellcheck disable=SC2086 # the tick pairs are words on purpose
  python3 - "$1" $2 $3 "$(getconf CLK_TCK)" <<'PY'
import json, sys
out, p0, s0, p1, s1, hz = sys.argv[1], *map(int, sys.argv[2:7])
j = json.load(open(out))["jobs"][0]
ios = j["write"]["total_ios"]
fio_us = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] * 1000 / ios
us = lambda d: d * 1e6 / hz / ios
print(f"{fio_us:.0f}/{us(p1 - p0):.0f}/{us(s1 - s0):.0f}")
PY
}

rows=("randwrite 4k 1" "randwrite 4k 32" "write 1M 8")
printf '%-24s %12s %10s %10s %10s %8s %8s %8s\n' workload standalone A B C A/solo B/solo C/solo
declare -A lat_us=()
median() { tr ' ' '\n' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for row in "${rows[@]}"; do
  read -r rw bs qd <<<"$row"
  declare -A vals=() lats=() cpus=()
  targets=(solo A B C)
  for ((round = 0; round < rounds; round++)); do
    for i in 0 1 2 3; do
      t=${targets[$(( (i + round) % 4 ))]}
      out="$work/$t.json"
      before=$(cpu_ticks "$t")
      fio_row "$out" --ioengine=nbd --uri="${uri[$t]}"
      after=$(cpu_ticks "$t")
      read -r iops mib <<<"$(fio_result "$out")"
      if [ "$bs" = 1M ]; then vals[$t]+=" $mib"; else vals[$t]+=" $iops"; fi
      cpus[$t]+=" $(cpu_per_io "$out" "$before" "$after")"
      if [ "$qd" = 1 ]; then
        lats[$t]+=" $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['jobs'][0]['write']['lat_ns']['mean']/1000)" "$out")"
      fi
    done
  done
  declare -A val=()
  for t in solo A B C; do
    val[$t]=$(echo ${vals[$t]} | median)
    if [ "$qd" = 1 ]; then lat_us[$t]=$(echo ${lats[$t]} | median); fi
  done
  # The CPU figures of the round whose throughput was the median.
  cpu_line="  CPU us per I/O (fio/primary/secondary):"
  for t in solo A B C; do
    read -r -a v <<<"${vals[$t]}"
    read -r -a c <<<"${cpus[$t]}"
    pick=0
    for k in "${!v[@]}"; do [ "${v[$k]}" = "${val[$t]}" ] && pick=$k; done
    cpu_line+=" $t ${c[$pick]:-?}"
  done
  unit=IOPS; [ "$bs" = 1M ] && unit=MiB/s
  python3 - "$rw $bs QD$qd ($unit)" "${val[solo]}" "${val[A]}" "${val[B]}" "${val[C]}" <<'PY'
import sys
row, s, a, b, c = sys.argv[1], *map(float, sys.argv[2:])
print(f"{row:<24} {s:>12.0f} {a:>10.0f} {b:>10.0f} {c:>10.0f} {a/s:>7.2f}x {b/s:>7.2f}x {c/s:>7.2f}x")
PY
  echo "$cpu_line"
done
python3 - "${lat_us[solo]}" "${lat_us[A]}" "${lat_us[B]}" "${lat_us[C]}" <<'PY'
import sys
s, a, b, c = map(float, sys.argv[1:])
print(f"QD1 4k write mean latency (median of rounds): standalone {s:.0f} us; added: A +{a-s:.0f} us, B +{b-s:.0f} us, C +{c-s:.0f} us")
PY
