#!/usr/bin/env bash
# Boots the kernel DRBD 8.4.11 peer (see build.sh) under qemu TCG and runs one guest script in it.
#
# Usage: tests/kernel-peer/run.sh --script FILE [options]
#   --script FILE       guest shell script (busybox sh; kp-lib.sh helpers available), required
#   --disk IMG          raw data disk, repeatable: the first is /dev/vda (also /dev/kp/data0), ...
#   --fwd HOST[:GUEST]  forward 127.0.0.1:HOST on the host to the guest's 10.0.2.15:GUEST (default 7789),
#                       repeatable. The guest reaches the host's 127.0.0.1:PORT as 10.0.2.2:PORT.
#   --env K=V           export K=V to the guest script, repeatable
#   --ctl FILE          control disk (created zeroed, serial kp-ctl): the host writes a word to the file
#                       (e.g. `printf stop | dd of=FILE conv=notrunc`) and the guest's kp_wait_ctl sees it
#   --log FILE          console log (default: <cache>/console.log)
#   --timeout SECS      kill the VM after SECS (default 600)
#   --mem MIB           guest memory (default 256)
#   --trace             run the guest script with sh -x
# The console shows KP-BOOTED, KP-SCRIPT-START, the script's output, and KP-SCRIPT-EXIT <rc>.
# qemu runs in the foreground (run.sh execs timeout+qemu); kill its process group to stop it early.
# The script image is written next to the log as LOG.script.img.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${KERNEL_PEER_DIR:-$repo/target/kernel-peer}

die() { echo "kernel-peer/run: ERROR: $*" >&2; exit 2; }

script= ; log=$cache/console.log ; ctl= ; timeout_s=600 ; mem_mib=256 ; trace=
disks=() ; fwds=() ; envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --script) script=$2; shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --fwd) fwds+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --ctl) ctl=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem_mib=$2; shift 2 ;;
    --trace) trace=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$script" ] || die "--script FILE is required"
[ -f "$script" ] || die "no such script $script"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (run scripts/install-deps.sh)"

env_file=$("$here/build.sh" | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"

mkdir -p "$(dirname "$log")"
# The script disk: exports, then the script, zero-padded to whole 512-byte sectors.
script_img=$log.script.img
{
  for kv in "${envs[@]}"; do
    k=${kv%%=*}; v=${kv#*=}
    printf "export %s='%s'\n" "$k" "$(printf '%s' "$v" | sed "s/'/'\\\\''/g")"
  done
  cat "$script"
  echo
} > "$script_img"
size=$(stat -c %s "$script_img")
truncate -s $(( (size + 511) / 512 * 512 )) "$script_img"

args=(-accel tcg -m "$mem_mib" -smp 1 -nodefaults -display none -monitor none -no-reboot
      -serial "file:$log" -kernel "$KP_KERNEL" -initrd "$KP_INITRAMFS")
append="console=ttyS0 panic=-1 quiet"
[ -n "$trace" ] && append="$append kp.trace=1"
args+=(-append "$append")
i=0
for d in "${disks[@]}"; do
  [ -f "$d" ] || [ -b "$d" ] || die "no such disk $d"
  args+=(-drive "if=none,id=data$i,file=$d,format=raw" -device "virtio-blk-pci,drive=data$i,serial=kp-data$i")
  i=$((i + 1))
done
args+=(-drive "if=none,id=script,file=$script_img,format=raw,readonly=on"
       -device "virtio-blk-pci,drive=script,serial=kp-script")
if [ -n "$ctl" ]; then
  rm -f "$ctl"
  truncate -s 4096 "$ctl"
  args+=(-drive "if=none,id=ctl,file=$ctl,format=raw,cache=directsync" -device "virtio-blk-pci,drive=ctl,serial=kp-ctl")
fi
netdev="user,id=n0,net=10.0.2.0/24"
for f in "${fwds[@]}"; do
  host=${f%%:*}; guest=7789
  [ "$f" != "$host" ] && guest=${f#*:}
  netdev="$netdev,hostfwd=tcp:127.0.0.1:$host-10.0.2.15:$guest"
done
args+=(-netdev "$netdev" -device virtio-net-pci,netdev=n0,romfile=)

echo "kernel-peer/run: $KP_KERNEL_RELEASE, console -> $log" >&2
exec timeout -k 5 "$timeout_s" qemu-system-x86_64 "${args[@]}"
