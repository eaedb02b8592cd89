#!/usr/bin/env bash
# Disposable Linux SSH target hosts for integration tests: a real sshd in its
# own network/mount/PID/UTS/IPC namespaces with a private copy of /etc, so
# accounts created there never touch the test machine. See docs/ssh-test-hosts.md.
#
#   scripts/ssh-host.sh up <state-dir>     start a host; prints env.json on one line
#   scripts/ssh-host.sh down <state-dir>   stop it and remove <state-dir> (idempotent)
#   scripts/ssh-host.sh cleanup-all        remove every jgt-ssh-* namespace
#
# Needs root, iproute2, util-linux (unshare), openssh-server, openssh-client
# (ssh-keygen). Apt packages: scripts/deps/ssh.txt.
set -Eeuo pipefail

NS_PREFIX=jgt-ssh-
VETH_PREFIX=jgts          # host side jgtsX; the namespace side is renamed to eth0
REGISTRY=/run/jgt-ssh     # <netns> -> state dir, so cleanup-all can remove state dirs
HERE=${BASH_SOURCE[0]%/*}
[ "$HERE" != "${BASH_SOURCE[0]}" ] || HERE=.
HERE=$(cd "$HERE" && pwd)

die() { echo "ssh-host: $*" >&2; exit 1; }

# JSON string literal of $2 into variable $1 (no subshell). Our values are
# generated (base64, digits, mkdtemp paths); escape anyway.
json_str() {
  local -n out=$1
  local s=${2//\\/\\\\}
  s=${s//\"/\\\"}
  out="\"$s\""
}

# Kill every process in netns $1, wait for them to go, delete the namespace and veth.
teardown_ns() {
  local ns=$1 idx=${1#"$NS_PREFIX"} pids i
  if [ -e "/run/netns/$ns" ]; then
    for (( i = 0; i < 300; i++ )); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.01
    done
    ip netns del "$ns" 2>/dev/null || true
  fi
  [ ! -e "/sys/class/net/$VETH_PREFIX$idx" ] || ip link del "$VETH_PREFIX$idx" 2>/dev/null || true
  rm -f "$REGISTRY/$ns"
}

cmd_up() {
  local state=${1:-}
  [ -n "$state" ] || die "usage: $0 up <state-dir>"
  [ "$EUID" = 0 ] || die "must run as root"
  [ ! -e "$state/netns" ] || die "state dir already holds a host: $state"
  mkdir -p "$state/etc"
  state=$(cd "$state" && pwd)
  chmod 0700 "$state"

  # Host key and provisioning identity, in parallel with the namespace setup.
  ssh-keygen -q -t ed25519 -N '' -C jitgate-test-host -f "$state/ssh_host_ed25519_key" &
  local kg1=$!
  ssh-keygen -q -t ed25519 -N '' -C jitgate-provisioner -f "$state/admin_ed25519" &
  local kg2=$!

  # Allocate index X: netns jgt-ssh-X, link 10.201.X.0/30. `ip netns add` fails
  # when the name exists, which makes the allocation atomic between parallel runs.
  local start idx off ns='' used
  used=$(ip -4 -o addr show)
  start=$(( (RANDOM + $$) % 256 ))
  for (( off = 0; off < 256; off++ )); do
    idx=$(( (start + off) % 256 ))
    [ -e "/run/netns/$NS_PREFIX$idx" ] && continue
    [ -e "/sys/class/net/$VETH_PREFIX$idx" ] && continue
    [[ $used == *" 10.201.$idx."* ]] && continue
    if ip netns add "$NS_PREFIX$idx" 2>/dev/null; then ns=$NS_PREFIX$idx; break; fi
  done
  [ -n "$ns" ] || die "no free jgt-ssh-* slot"
  trap 'teardown_ns "$ns"' ERR
  echo "$ns" >"$state/netns"
  echo "$ns" >"$state/hostname"
  [ -d "$REGISTRY" ] || mkdir -p "$REGISTRY"
  echo "$state" >"$REGISTRY/$ns"

  local host_addr="10.201.$idx.1" addr="10.201.$idx.2" veth="$VETH_PREFIX$idx"
  # Paths as seen from inside the host, where the state dir is bind-mounted at /run/jgt.
  cat >"$state/sshd_config" <<EOF
ListenAddress $addr:22
HostKey /run/jgt/ssh_host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
# JIT accounts log in with passwords; PAM (pam_unix) checks password, lock and expiry.
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200
MaxSessions 64
LoginGraceTime 20
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
  wait "$kg1" "$kg2"

  # The init copies /etc and mounts while we wire the veth; it waits for
  # <state>/net-ready before starting sshd. setsid: detached from the caller's
  # session; stdio to a file so nobody waits on our pipes. --kill-child: if
  # unshare dies, its child (PID 1 of the host) dies and takes everything along.
  setsid ip netns exec "$ns" unshare --mount --uts --ipc --pid --fork --mount-proc --kill-child \
    bash "$HERE/ssh-host-init.sh" "$state" </dev/null >"$state/host.log" 2>&1 &
  local outer=$!

  ip link add "$veth" type veth peer name "${veth}n" netns "$ns"
  ip -batch - <<EOF
addr add $host_addr/30 dev $veth
link set $veth up
EOF
  ip -n "$ns" -batch - <<EOF
link set ${veth}n name eth0
addr add $addr/30 dev eth0
link set eth0 up
link set lo up
route add default via $host_addr
EOF
  : >"$state/net-ready"

  local pub fp _bits
  read -r pub <"$state/ssh_host_ed25519_key.pub"
  read -r _bits fp _ < <(ssh-keygen -l -E sha256 -f "$state/ssh_host_ed25519_key.pub")

  # Ready when sshd accepts a TCP connection (a refused connect returns at once).
  # Builtins only (no subshell per attempt): the init needs the CPU meanwhile.
  local ok=0 i tick probe
  exec {tick}<> <(:)
  for (( i = 0; i < 2500; i++ )); do
    if { exec {probe}<>"/dev/tcp/$addr/22"; } 2>/dev/null; then exec {probe}>&-; ok=1; break; fi
    [ -e "/proc/$outer" ] || break
    read -r -t 0.004 -u "$tick" _ || true
  done
  if [ "$ok" != 1 ]; then
    cat "$state/host.log" >&2 || true
    teardown_ns "$ns"
    die "sshd did not come up"
  fi
  # PID 1 of the host's PID namespace (as seen from here) is unshare's only child.
  local init_pid=''
  read -r init_pid _ <"/proc/$outer/task/$outer/children" || true
  [ -n "$init_pid" ] || init_pid=$outer
  echo "$init_pid" >"$state/pid"

  local j_ns j_ha j_a j_pub j_fp j_key j_state
  json_str j_ns "$ns"; json_str j_ha "$host_addr"; json_str j_a "$addr"; json_str j_pub "$pub"
  json_str j_fp "$fp"; json_str j_key "$state/admin_ed25519"; json_str j_state "$state"
  local json="{\"netns\":$j_ns,\"hostAddress\":$j_ha,\"address\":$j_a,\"port\":22,\"hostKeyPublic\":$j_pub,\"hostKeySha256\":$j_fp,\"adminUser\":\"root\",\"adminKeyPath\":$j_key,\"pid\":$init_pid,\"stateDir\":$j_state,\"log\":\"$state/host.log\"}"
  printf '%s\n' "$json" >"$state/env.json"
  trap - ERR
  printf '%s\n' "$json"
}

cmd_down() {
  local state=${1:-} ns
  [ -n "$state" ] || die "usage: $0 down <state-dir>"
  [ -d "$state" ] || return 0
  if [ -f "$state/netns" ]; then
    read -r ns <"$state/netns" || ns=''
    case "$ns" in
      "$NS_PREFIX"[0-9]*) teardown_ns "$ns" ;;
      '') ;;
      *) die "bad netns name in $state/netns" ;;
    esac
  fi
  rm -rf -- "$state"
}

cmd_cleanup_all() {
  local ns state l
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS_PREFIX" || true); do
    state=''
    [ -f "$REGISTRY/$ns" ] && read -r state <"$REGISTRY/$ns"
    teardown_ns "$ns"
    if [ -n "$state" ] && [ -f "$state/netns" ] && [ "$(cat "$state/netns")" = "$ns" ]; then
      rm -rf -- "$state"
    fi
  done
  # Host-side veths whose namespace vanished some other way.
  for l in /sys/class/net/"$VETH_PREFIX"*; do
    [ -e "$l" ] || continue
    l=${l##*/}
    [[ $l =~ ^${VETH_PREFIX}[0-9]+$ ]] && ip link del "$l" 2>/dev/null || true
  done
}

case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down "${2:-}" ;;
  cleanup-all) cmd_cleanup_all ;;
  *) die "usage: $0 up <state-dir> | down <state-dir> | cleanup-all" ;;
esac
