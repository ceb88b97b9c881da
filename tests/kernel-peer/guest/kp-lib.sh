# Shell helpers for kernel-peer guest scripts (sourced before the script runs; busybox sh).
# Result lines the host parses start with "KP-"; everything else on the console is kernel or tool output.

# Finds the virtio disks by serial: KP_SCRIPT_DEV, KP_CTL_DEV, and /dev/kp/<serial> links (data0, data1...).
kp_find_disks() {
  KP_SCRIPT_DEV=; KP_CTL_DEV=
  for s in /sys/block/vd*; do
    [ -e "$s/serial" ] || continue
    serial=$(cat "$s/serial"); dev=/dev/${s##*/}
    case "$serial" in
      kp-script) KP_SCRIPT_DEV=$dev ;;
      kp-ctl) KP_CTL_DEV=$dev ;;
      kp-*) ln -sf "$dev" "/dev/kp/${serial#kp-}" ;;
    esac
  done
  export KP_SCRIPT_DEV KP_CTL_DEV
}

# kp_result KEY VALUE...: one machine-readable line "KP-RESULT KEY VALUE...".
kp_result() { echo "KP-RESULT $*"; }

# kp_run CMD...: runs a command, echoing it; prints "KP-FAIL rc CMD" and returns rc when it fails.
kp_run() {
  echo "KP-RUN $*"
  "$@"
  rc=$?
  [ $rc -eq 0 ] || echo "KP-FAIL $rc $*"
  return $rc
}

# kp_proc_drbd: /proc/drbd between KP-PROC-DRBD-BEGIN and KP-PROC-DRBD-END lines.
kp_proc_drbd() {
  echo "KP-PROC-DRBD-BEGIN"
  cat /proc/drbd
  echo "KP-PROC-DRBD-END"
}

# kp_drbd_up RES MINOR DISK LOCAL_ADDR PEER_ADDR [connect options...]
# create-md (fresh v08 internal meta-data), new-resource, new-minor (volume 0), attach, connect.
# Addresses are host:port, e.g. 10.0.2.15:7789 10.0.2.2:7790. Set KP_SKIP_CREATE_MD=1 to keep meta-data,
# KP_ATTACH_OPTS for attach options (e.g. "--resync-rate=20M --c-plan-ahead=0").
kp_drbd_up() {
  res=$1; minor=$2; disk=$3; local_addr=$4; peer_addr=$5; shift 5
  if [ -z "${KP_SKIP_CREATE_MD:-}" ]; then
    echo yes | kp_run drbdmeta --force "$minor" v08 "$disk" internal create-md || return 1
  fi
  kp_run drbdsetup new-resource "$res" || return 1
  kp_run drbdsetup new-minor "$res" "$minor" 0 || return 1
  # shellcheck disable=SC2086
  kp_run drbdsetup attach "$minor" "$disk" "$disk" internal ${KP_ATTACH_OPTS:-} || return 1
  kp_run drbdsetup connect "$res" "ipv4:$local_addr" "ipv4:$peer_addr" "$@" || return 1
}

# kp_cs MINOR: the connection state of a minor (e.g. WFConnection), from /proc/drbd.
kp_cs() { sed -n "s/^ *$1: cs:\([A-Za-z]*\) .*/\1/p" /proc/drbd; }

# kp_wait_cs MINOR STATE TIMEOUT_S: waits until the minor's cs: is STATE; 0 when reached, 1 on timeout.
kp_wait_cs() {
  i=0
  while [ "$i" -lt "$3" ]; do
    [ "$(kp_cs "$1")" = "$2" ] && return 0
    sleep 1; i=$((i + 1))
  done
  echo "KP-TIMEOUT waiting for cs:$2 on minor $1 (now cs:$(kp_cs "$1"))"
  return 1
}

# kp_ctl: the first line of the control disk (the host writes words there, e.g. "stop").
kp_ctl() {
  [ -n "$KP_CTL_DEV" ] || return 1
  blockdev --flushbufs "$KP_CTL_DEV" 2>/dev/null
  dd if="$KP_CTL_DEV" bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1
}

# kp_wait_ctl WORD TIMEOUT_S [INTERVAL_S]: prints /proc/drbd every INTERVAL_S (default 1) until the
# control disk's first line is WORD; 0 when seen, 1 on timeout. KP_QUIET=1 suppresses /proc/drbd.
kp_wait_ctl() {
  word=$1; timeout_s=$2; interval_s=${3:-1}; waited=0
  while [ "$waited" -lt "$timeout_s" ]; do
    if [ "$(kp_ctl)" = "$word" ]; then echo "KP-CTL $word"; return 0; fi
    [ -n "${KP_QUIET:-}" ] || kp_proc_drbd
    sleep "$interval_s"; waited=$((waited + interval_s))
  done
  echo "KP-TIMEOUT waiting for control word $word"
  return 1
}

# kp_wait_stop TIMEOUT_S [INTERVAL_S]: kp_wait_ctl stop.
kp_wait_stop() { kp_wait_ctl stop "$@"; }

# kp_sha256 DEV BLOCKS_4K [KEY]: prints "KP-RESULT KEY <sha256>" (KEY default sha256) of the first
# BLOCKS_4K 4 KiB blocks of DEV (a backing disk's data area, or /dev/drbdN when Primary).
kp_sha256() {
  sum=$(dd if="$1" bs=4096 count="$2" 2>/dev/null | sha256sum | cut -d' ' -f1)
  kp_result "${3:-sha256}" "$sum"
}

# kp_serve IDLE_S: a command channel for the host (KernelPeerVm::guest in tests/src/kernel_peer/vm.rs).
# The host writes one line "KPCMD N <shell command> #KPEND-N" at the start of the control disk; each new N
# runs once, in this shell (so variables and functions persist), between the console lines
# "KP-CMD-BEGIN N" and "KP-CMD-END N rc". A line without its own end marker (a torn read) is ignored.
# Returns 0 after a command that sets KP_SERVE_DONE=1, 1 after IDLE_S seconds without a new command.
kp_serve() {
  kp_serve_last=; kp_serve_idle=0; KP_SERVE_DONE=
  echo "KP-SERVE-READY"
  while [ -z "$KP_SERVE_DONE" ]; do
    kp_line=$(dd if="$KP_CTL_DEV" bs=4096 count=1 iflag=direct 2>/dev/null | tr -d '\000' | head -n 1)
    kp_n=; kp_body=
    case "$kp_line" in
      "KPCMD "*)
        kp_n=${kp_line#KPCMD }; kp_n=${kp_n%% *}
        kp_body=${kp_line#KPCMD "$kp_n" }
        case "$kp_body" in
          *" #KPEND-$kp_n") kp_body=${kp_body%" #KPEND-$kp_n"} ;;
          *) kp_body= ;;
        esac ;;
    esac
    if [ -n "$kp_body" ] && [ "$kp_n" != "$kp_serve_last" ]; then
      kp_serve_last=$kp_n; kp_serve_idle=0
      echo "KP-CMD-BEGIN $kp_n"
      eval "$kp_body"
      echo "KP-CMD-END $kp_n $?"
    else
      sleep 0.1
      kp_serve_idle=$((kp_serve_idle + 1))
      if [ "$kp_serve_idle" -ge $(($1 * 10)) ]; then
        echo "KP-TIMEOUT kp_serve: no command for $1 s"
        return 1
      fi
    fi
  done
  return 0
}
