#!/usr/bin/env bash
# Builds (or reuses) the kernel DRBD 8.4.11 reference peer: a Debian 12 cloud kernel and an initramfs
# holding busybox, drbdsetup-84 (as drbdsetup), drbdmeta, their libraries, and the modules DRBD and
# virtio need, loaded by /init in an order computed from each module's `depends=` string.
#
# Usage: tests/kernel-peer/build.sh            (prints the path of the env file on its last line)
# Env:   KERNEL_PEER_DIR  cache directory (default: <repo>/target/kernel-peer)
#        KERNEL_PEER_PKG  kernel package to use (default: the newest linux-image-6.1.0-N-cloud-amd64-unsigned)
# Output: $KERNEL_PEER_DIR/current.env with KP_KERNEL, KP_INITRAMFS, KP_KERNEL_PKG, KP_KERNEL_RELEASE.
# Idempotent: the download, the unpacked package and the initramfs are cached; the initramfs is rebuilt
# only when one of its inputs (kernel package, guest files, binaries, this script) changes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${KERNEL_PEER_DIR:-$repo/target/kernel-peer}
mkdir -p "$cache/debs"

log() { echo "kernel-peer/build: $*" >&2; }
die() { echo "kernel-peer/build: ERROR: $*" >&2; exit 1; }

for tool in cpio gzip strings busybox dpkg apt-get; do
  command -v "$tool" >/dev/null 2>&1 || die "missing tool '$tool' (run scripts/install-deps.sh)"
done
drbdsetup_bin=/usr/lib/drbd/drbdsetup-84
drbdmeta_bin=$(command -v drbdmeta || true)
[ -x "$drbdsetup_bin" ] || die "missing $drbdsetup_bin (package drbd-utils)"
[ -n "$drbdmeta_bin" ] || die "missing drbdmeta (package drbd-utils)"
busybox_bin=$(command -v busybox)
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
file_is_static "$busybox_bin" || die "$busybox_bin is not static (install busybox-static)"

# --- 1. the kernel package: newest ABI number that apt knows, or a cached one when apt knows none.
pkg=${KERNEL_PEER_PKG:-}
if [ -z "$pkg" ]; then
  pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' 2>/dev/null \
        | awk '{print $1}' | sort -V | tail -n 1 || true)
fi
if [ -z "$pkg" ]; then
  cached=$(ls "$cache/debs" 2>/dev/null | sed -n 's/^\(linux-image-6\.1\.0-[0-9]*-cloud-amd64-unsigned\)_.*\.deb$/\1/p' | sort -V | tail -n 1)
  [ -n "$cached" ] || die "apt-cache lists no linux-image-6.1.0-N-cloud-amd64-unsigned and none is cached in $cache/debs (apt-get update?)"
  pkg=$cached
fi
deb=$(ls "$cache/debs/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
  log "downloading $pkg"
  (cd "$cache/debs" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
  deb=$(ls "$cache/debs/${pkg}"_*.deb | sort -V | tail -n 1)
fi
unpacked=$cache/$pkg
if [ ! -f "$unpacked/.unpacked" ]; then
  log "unpacking $(basename "$deb")"
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  dpkg -x "$deb" "$unpacked"
  touch "$unpacked/.unpacked"
fi
kernel=$(ls "$unpacked"/boot/vmlinuz-* | head -n 1)
release=${kernel##*/vmlinuz-}
moddir=$unpacked/lib/modules/$release
[ -d "$moddir" ] || die "no module directory $moddir"

# --- 2. modules: dependency closure of the wanted ones, in dependency order (dependencies first).
wanted=(drbd virtio_pci virtio_net virtio_blk)
declare -A mod_path=()
while IFS= read -r f; do
  name=${f##*/}; name=${name%%.ko*}; name=${name//-/_}
  mod_path[$name]=$f
done < <(find "$moddir/kernel" -name '*.ko*')
mod_depends() {
  local f=$1
  case "$f" in
    *.ko) strings -n 3 "$f" ;;
    *.ko.xz) xz -dc "$f" | strings -n 3 ;;
    *.ko.zst) zstd -dc "$f" | strings -n 3 ;;
    *.ko.gz) gzip -dc "$f" | strings -n 3 ;;
  esac | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '
}
declare -A visited=()
order=()
visit() {
  local m=$1 d
  [ -n "${visited[$m]:-}" ] && return 0
  visited[$m]=1
  [ -n "${mod_path[$m]:-}" ] || die "module $m not found under $moddir (built in? then drop it from the list)"
  for d in $(mod_depends "${mod_path[$m]}"); do visit "$d"; done
  order+=("$m")
}
for m in "${wanted[@]}"; do visit "$m"; done

# --- 3. the initramfs, rebuilt when an input changes.
stamp_inputs() {
  echo "$pkg $release ${order[*]}"
  for f in "$here/build.sh" "$here"/guest/* "$drbdsetup_bin" "$drbdmeta_bin" "$busybox_bin"; do
    sha256sum < "$f"
  done
}
stamp=$(stamp_inputs | sha256sum | cut -d' ' -f1)
initramfs=$cache/initramfs-$release.cpio.gz
if [ ! -f "$initramfs" ] || [ "$(cat "$initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building initramfs for $release (modules: ${order[*]})"
  root=$cache/initramfs-root
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/lock,var/lib/drbd,var/run,lib/modules,lib64,lib/x86_64-linux-gnu,mnt}
  cp "$busybox_bin" "$root/bin/busybox"
  for applet in $("$busybox_bin" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  cp "$drbdsetup_bin" "$root/sbin/drbdsetup"
  cp "$drbdmeta_bin" "$root/sbin/drbdmeta"
  # Shared libraries of the two dynamic binaries, at the paths the loader looks for them.
  for lib in $(ldd "$drbdsetup_bin" "$drbdmeta_bin" | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  i=0
  : > "$root/lib/modules/order"
  for m in "${order[@]}"; do
    src=${mod_path[$m]}
    dst=$(printf '%02d-%s.ko' "$i" "$m")
    case "$src" in
      *.ko) cp "$src" "$root/lib/modules/$dst" ;;
      *.ko.xz) xz -dc "$src" > "$root/lib/modules/$dst" ;;
      *.ko.zst) zstd -dc "$src" > "$root/lib/modules/$dst" ;;
      *.ko.gz) gzip -dc "$src" > "$root/lib/modules/$dst" ;;
    esac
    echo "$dst" >> "$root/lib/modules/order"
    i=$((i + 1))
  done
  cp "$here/guest/init" "$root/init"
  cp "$here/guest/kp-lib.sh" "$root/etc/kp-lib.sh"
  chmod 755 "$root/init"
  echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
  (cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet | gzip -6) > "$initramfs.tmp"
  mv "$initramfs.tmp" "$initramfs"
  echo "$stamp" > "$initramfs.stamp"
fi

env_file=$cache/current.env
cat > "$env_file.tmp" <<ENV
KP_KERNEL_PKG=$pkg
KP_KERNEL_RELEASE=$release
KP_KERNEL=$kernel
KP_INITRAMFS=$initramfs
ENV
mv "$env_file.tmp" "$env_file"
log "kernel $release, initramfs $initramfs"
echo "$env_file"
