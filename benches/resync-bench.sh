#!/usr/bin/env bash
# Resync speed: the initial full sync of a loopback pair (alice = SyncSource, bob =
# SyncTarget, both backing files in the scratch directory) with `c-plan-ahead 0` and
# resync-rate 4G (unlimited), 40M and 10M, against what this machine allows, in one run.
# As in DRBD, one 100 ms step of the SyncTarget never has more than max-buffers / 2 blocks
# in flight, so max-buffers caps even an unlimited resync: the default 2048 at
# 1024 x 4 KiB / 100 ms = 40 MiB/s. The unlimited sync runs twice, with the default and
# with `--max-buffers` (32768: 640 MiB/s, above this machine's disk).
#
#
# - disk: fio (O_DIRECT, 1M blocks, QD8) reading one file of the device's size while
#   writing another on the same filesystem, as the two nodes of the pair do; the slower
#   side is the disk's figure (sequential write and read alone are printed too);
# - loopback: python3 sending the device's size over one TCP connection on 127.0.0.1.
#
# The speed of a sync is the `oos:` of bob's status file against the clock, fitted between
# 10 % and 90 % done (polled every 50 ms), and, for comparison, the data size over the
# whole time bob is SyncTarget. A limited rate is reported as a ratio of its limit, the
# unlimited one as a ratio of min(disk, loopback).
#
# `--unlimited-only` runs the unlimited row with --max-buffers alone (for a large --size, where the limited
# rows would take minutes).
#
#   benches/resync-bench.sh [--size SIZE] [--max-buffers N] [--unlimited-only]
disk_size=256M
max_buffers=32768
unlimited_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --size) disk_size=$2; shift 2 ;;
    --max-buffers) max_buffers=$2; shift 2 ;;
    --unlimited-only) unlimited_only=true; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/lib.sh"

make_disk "$work/alice.img" "$disk_size"
cp --sparse=never "$work/alice.img" "$work/bob.img"
size_bytes=$(stat -c %s "$work/alice.img")

# fio_mib OUT.json SIDE: MiB/s of the read or write side summed over every job.
fio_mib() {
  python3 - "$1" "$2" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
print(f"{sum(j[sys.argv[2]]['bw_bytes'] for j in jobs) / 1048576:.1f}")
PY
}
seq_job() {
  echo "--name=$1 --rw=$1 --filename=$2 --bs=1M --iodepth=8 --direct=1 --ioengine=io_uring --size=$size_bytes"
}
cp --sparse=never "$work/alice.img" "$work/disk-read.img"
fallocate -l "$size_bytes" "$work/disk-write.img"
# shellcheck disable=SC2046 # the job options are words on purpose
fio --output-format=json --output="$work/w.json" $(seq_job write "$work/disk-write.img") >/dev/null
# shellcheck disable=SC2046
fio --output-format=json --output="$work/r.json" $(seq_job read "$work/disk-read.img") >/dev/null
# shellcheck disable=SC2046
fio --output-format=json --output="$work/rw.json" $(seq_job read "$work/disk-read.img") \
  $(seq_job write "$work/disk-write.img") >/dev/null
disk_write=$(fio_mib "$work/w.json" write)
disk_read=$(fio_mib "$work/r.json" read)
copy_read=$(fio_mib "$work/rw.json" read)
copy_write=$(fio_mib "$work/rw.json" write)
rm -f "$work/disk-read.img" "$work/disk-write.img"

loopback=$(python3 - "$size_bytes" <<'PY'
import socket, sys, threading, time
size = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))
def receive():
    conn, _ = server.accept()
    buf = bytearray(1 << 20)
    got = 0
    while got < size:
        n = conn.recv_into(buf)
        if n == 0:
            break
        got += n
    conn.sendall(b"k")
    conn.close()
t = threading.Thread(target=receive)
t.start()
client = socket.create_connection(server.getsockname())
chunk = bytes(1 << 20)
start = time.monotonic()
left = size
while left > 0:
    client.sendall(chunk[: min(left, len(chunk))])
    left -= min(left, len(chunk))
client.recv(1)
print(f"{size / (time.monotonic() - start) / 1048576:.1f}")
t.join()
PY
)

port=$(( 20000 + RANDOM % 20000 ))
bench_nodes+=(alice bob)
adm() { local n=$1; shift; "$bin/rdbdadm" -c "$work/$n.conf" --node "$n" --run-dir "$work/run-$n" "$@"; }

# full_sync RATE MAX-BUFFERS: a fresh full sync at resync-rate RATE; prints "FITTED WHOLE SECONDS"
# (MiB/s, MiB/s, s; FITTED is "-" when the sync was too short for a fit).
full_sync() {
  cat > "$work/alice.conf" <<CONF
resource r0 {
  net { ping-timeout 30; max-buffers $2; }
  disk { c-plan-ahead 0; resync-rate $1; }
  on alice { device /dev/drbd0; disk $work/alice.img; address 127.0.0.1:$port; meta-disk internal; }
  on bob { device /dev/drbd0; disk $work/bob.img; address 127.0.0.1:$(( port + 1 )); meta-disk internal; }
}
CONF
  cp "$work/alice.conf" "$work/bob.conf"
  for n in alice bob; do adm "$n" create-md --force r0 >/dev/null 2>&1; adm "$n" up r0 >/dev/null; done
  adm alice wait-connect --timeout 30 r0 >/dev/null
  adm alice primary --force r0 >/dev/null
  python3 - "$work/run-bob/drbd" <<'PY'
import re, sys, time
path = sys.argv[1]
points, started, total, last = [], None, None, None
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        text = open(path).read()
    except OSError:
        text = ""
    now = time.monotonic()
    if started is None and "cs:SyncTarget" in text:
        started = now
    if started is not None:
        if "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate" in text:
            took = now - started
            break
        m = re.search(r"oos:(\d+)", text)
        if m and "cs:SyncTarget" in text:
            left = int(m.group(1))
            total = total or left
            if left != last:
                points.append((now, left))
                last = left
    time.sleep(0.05)
else:
    sys.exit("the sync did not finish in 600 s")
window = [(t, l) for t, l in points if total / 10 <= total - l <= total * 9 / 10]
fitted = "-"
if len(window) >= 3:
    mt = sum(t for t, _ in window) / len(window)
    ml = sum(l for _, l in window) / len(window)
    cov = sum((t - mt) * (l - ml) for t, l in window)
    var = sum((t - mt) ** 2 for t, _ in window)
    fitted = f"{-cov / var / 1024:.1f}"
print(fitted, f"{total / 1024 / took:.1f}", f"{took:.2f}")
PY
  adm alice wait-sync --timeout 60 r0 >/dev/null
  for n in alice bob; do adm "$n" down r0 >/dev/null; done
}

echo "$disk_size pair, backing files on $(df --output=source "$work" | tail -1)"
printf 'disk: write %s MiB/s, read %s MiB/s alone; read %s + write %s MiB/s together\n' \
  "$disk_write" "$disk_read" "$copy_read" "$copy_write"
printf 'loopback TCP: %s MiB/s\n' "$loopback"
printf '%-12s %12s %12s %14s %8s %18s\n' resync-rate max-buffers "MiB/s (fit)" "MiB/s (whole)" seconds ratio
rows=("4G 2048" "4G $max_buffers" "40M 2048" "10M 2048")
$unlimited_only && rows=("4G $max_buffers")
for row in "${rows[@]}"; do
  read -r rate mb <<<"$row"
  read -r fitted whole took <<<"$(full_sync "$rate" "$mb")"
  python3 - "$rate" "$mb" "$fitted" "$whole" "$took" "$copy_read" "$copy_write" "$loopback" <<'PY'
import sys
rate, mb, fitted, whole, took = sys.argv[1:6]
copy_read, copy_write, loopback = map(float, sys.argv[6:9])
speed = float(whole if fitted == "-" else fitted)
if rate == "4G":
    bound = min(copy_read, copy_write, loopback)
    ratio = f"{speed / bound:.2f}x of {bound:.0f}"
else:
    limit = float(rate[:-1])
    ratio = f"{speed / limit:.2f}x of {limit:.0f}"
print(f"{rate:<12} {mb:>12} {fitted:>12} {float(whole):>14.1f} {float(took):>8.2f} {ratio:>18}")
PY
done
