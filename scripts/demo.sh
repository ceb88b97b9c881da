#!/usr/bin/env bash
# rdbd demo: a two-node pair on loopback (alice and bob, two run directories, two
# backing files), replicating one resource with DRBD 8.4's protocol C:
#   initial sync after `primary --force`, writes through NBD on the primary, the
#   /proc/drbd-format status file of both nodes while it works, a switch-over
#   (secondary on alice, primary on bob) and the data read back on bob.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --bins --quiet
bin="$PWD/target/release"
export PATH="$bin:$PATH"

work=$(mktemp -d /var/tmp/rdbd-demo.XXXXXX)
cleanup() {
  for n in alice bob; do
    rdbdadm -c "$work/rdbd.conf" --node "$n" --run-dir "$work/run-$n" shutdown >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port_a=$(free_port)
port_b=$(free_port)
# One configuration for both nodes, as with DRBD: each node picks its `on` section.
cat > "$work/rdbd.conf" <<CONF
global { usage-count no; }
common {
  net  { protocol C; connect-int 2; ping-int 2; max-buffers 8000; }
  disk { c-plan-ahead 0; resync-rate 400M; }
}
resource r0 {
  on alice {
    device    /dev/drbd0;
    disk      $work/alice.img;
    address   127.0.0.1:$port_a;
    meta-disk internal;
  }
  on bob {
    device    /dev/drbd0;
    disk      $work/bob.img;
    address   127.0.0.1:$port_b;
    meta-disk internal;
  }
}
CONF
truncate -s 256M "$work/alice.img" "$work/bob.img"
alice() { rdbdadm -c "$work/rdbd.conf" --node alice --run-dir "$work/run-alice" "$@"; }
bob() { rdbdadm -c "$work/rdbd.conf" --node bob --run-dir "$work/run-bob" "$@"; }
status_both() {
  printf -- '--- alice: %s\n' "$work/run-alice/drbd"; sed -n '3,$p' "$work/run-alice/drbd"
  printf -- '--- bob:   %s\n' "$work/run-bob/drbd"; sed -n '3,$p' "$work/run-bob/drbd"
}
wait_for() { # NODE TEXT: wait until the node's status file contains TEXT
  local i
  for i in $(seq 1 600); do
    grep -q -- "$2" "$work/run-$1/drbd" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' on $1"; status_both; exit 1
}

step "configuration ($work/rdbd.conf)"
cat "$work/rdbd.conf"
step "create meta-data and bring the resource up on both nodes"
show alice create-md --force r0
show bob create-md --force r0
show alice up r0
show bob up r0
wait_for alice "cs:Connected"
status_both
step "initial sync: promote alice with --force (both disks are Inconsistent)"
show alice primary --force r0
sleep 0.5
status_both
wait_for bob "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate"
wait_for alice "ds:UpToDate/UpToDate"
status_both
step "write 64 MiB of random data through NBD on the primary (alice)"
head -c 64M /dev/urandom > "$work/data.bin"
uri_a=$(alice nbd-uri r0)
show nbdcopy "$work/data.bin" "$uri_a"
sleep 1.1
status_both
step "switch-over: alice becomes Secondary, bob Primary"
show alice secondary r0
wait_for bob "ro:Secondary/Secondary"
show bob primary r0
wait_for alice "ro:Secondary/Primary"
status_both
step "read the data back through NBD on bob"
uri_b=$(bob nbd-uri r0)
show nbdcopy "$uri_b" "$work/back.bin"
want=$(sha256sum < "$work/data.bin" | cut -c1-64)
got=$(head -c 64M "$work/back.bin" | sha256sum | cut -c1-64)
echo "written on alice: $want"
echo "read on bob:      $got"
[ "$want" = "$got" ] || { echo "MISMATCH"; exit 1; }
step "take both nodes down"
show bob secondary r0
show alice down r0
show bob down r0
echo
echo "demo finished: the data written on alice was read back on bob"
