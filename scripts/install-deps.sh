#!/usr/bin/env bash
# Installs every Debian package rdbd's demo, tests and benchmarks use.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail
packages=(
  libnbd-bin python3-libnbd fio nbdkit qemu-utils drbd-utils
  fuse3 e2fsprogs util-linux iproute2 iputils-ping iputils-arping kmod procps psmisc
  qemu-system-x86 busybox-static cpio binutils
  resource-agents libxml2-utils
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
