#!/usr/bin/env bash
# rdbd demo on an embedded default configuration: a resource backed by a file in a
# temporary directory, exported over NBD, written and read back with real NBD
# clients, with the /proc/drbd-format status file shown along the way.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --bins --quiet
bin="$PWD/target/release"
export PATH="$bin:$PATH"

work=$(mktemp -d /var/tmp/rdbd-demo.XXXXXX)
run_dir="$work/run"
cleanup() {
  rdbdadm -c "$work/rdbd.conf" --node alice --run-dir "$run_dir" shutdown >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# The embedded default: one node, one resource, internal meta-data.
cat > "$work/rdbd.conf" <<CONF
global { usage-count no; }
common { net { protocol C; } }
resource r0 {
  on alice {
    device    /dev/drbd0;
    disk      $work/alice.img;
    address   127.0.0.1:7789;
    meta-disk internal;
  }
}
CONF
truncate -s 256M "$work/alice.img"
adm() { rdbdadm -c "$work/rdbd.conf" --node alice --run-dir "$run_dir" "$@"; }

step "configuration ($work/rdbd.conf)"
cat "$work/rdbd.conf"
step "create meta-data and bring the resource up"
show adm create-md --force r0
show adm up r0
show cat "$run_dir/drbd"
step "promote (the fresh disk is Inconsistent, so --force, as with drbdadm)"
show adm primary --force r0
show adm status r0
uri=$(adm nbd-uri r0)
show nbdinfo "$uri"
step "write 64 MiB of random data through NBD, read it back"
head -c 64M /dev/urandom > "$work/data.bin"
show nbdcopy "$work/data.bin" "$uri"
show nbdcopy "$uri" "$work/back.bin"
want=$(sha256sum < "$work/data.bin" | cut -c1-64)
got=$(head -c 64M "$work/back.bin" | sha256sum | cut -c1-64)
echo "written: $want"
echo "read:    $got"
[ "$want" = "$got" ] || { echo "MISMATCH"; exit 1; }
show cat "$run_dir/drbd"
step "demote and take the resource down"
show adm secondary r0
show adm down r0
echo
echo "demo finished: data read back equal"
