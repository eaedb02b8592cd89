#!/usr/bin/env bash
# A disposable Linux RDP target for integration tests: an SSH test host
# (scripts/ssh-host.sh: sshd in its own network/mount/PID namespaces with a
# private /etc) that also runs Debian's xrdp + xorgxrdp, so a JIT account that
# the Linux SSH store creates over sshd logs in over RDP. See docs/ssh-test-hosts.md
# ("RDP: the xrdp host") and docs/rdp.md ("Testing against a real RDP server").
#
#   scripts/xrdp-host.sh up <state-dir>     start; prints env.json (with the rdp fields) on one line
#   scripts/xrdp-host.sh down <state-dir>   same as scripts/ssh-host.sh down
#   scripts/xrdp-host.sh install-deps       apt-get the packages of scripts/deps-optional/xrdp.txt (root)
#
# xrdp listens on <address>:3389 only (the namespace address), TLS only, with a
# self-signed certificate generated at start (its SHA-256 fingerprint is
# reported as rdpCertSha256, the form jitgate's rdpCertFingerprint takes).
# Apt packages: scripts/deps/ssh.txt + scripts/deps-optional/xrdp.txt.
set -Eeuo pipefail

HERE=${BASH_SOURCE[0]%/*}
[ "$HERE" != "${BASH_SOURCE[0]}" ] || HERE=.
HERE=$(cd "$HERE" && pwd)
RDP_PORT=3389

die() { echo "xrdp-host: $*" >&2; exit 1; }

cmd_up() {
  local state=${1:-}
  [ -n "$state" ] || die "usage: $0 up <state-dir>"
  [ -x /usr/sbin/xrdp ] && [ -x /usr/sbin/xrdp-sesman ] || die "xrdp not installed (scripts/deps-optional/xrdp.txt)"
  [ -e /usr/lib/xorg/modules/drivers/xrdpdev_drv.so ] || die "xorgxrdp not installed (scripts/deps-optional/xrdp.txt)"
  bash "$HERE/ssh-host.sh" up "$state" >/dev/null
  state=$(cd "$state" && pwd)
  trap 'bash "$HERE/ssh-host.sh" down "$state" >/dev/null 2>&1 || true' ERR

  local ns addr pid
  read -r ns <"$state/netns"
  read -r pid <"$state/pid"
  addr=$(sed -E 's/.*"address":"([^"]+)".*/\1/' "$state/env.json")

  # A fresh self-signed certificate per host: what a pinned fingerprint is checked against.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$ns" \
    -keyout "$state/xrdp-key.pem" -out "$state/xrdp-cert.pem" 2>/dev/null
  local fp
  fp=$(openssl x509 -in "$state/xrdp-cert.pem" -noout -fingerprint -sha256)
  fp=${fp#*=}

  # Paths as seen inside the host (state dir at /run/jgt). TLS only: xrdp 0.9
  # has no CredSSP, so a client asking for NLA gets TLS (RDP_NEG_RSP PROTOCOL_SSL).
  cat >"$state/xrdp.ini" <<EOF
[Globals]
ini_version=1
fork=true
port=tcp://$addr:$RDP_PORT
tcp_nodelay=true
security_layer=tls
crypt_level=high
certificate=/run/jgt/xrdp-cert.pem
key_file=/run/jgt/xrdp-key.pem
ssl_protocols=TLSv1.2, TLSv1.3
allow_channels=true
max_bpp=32
new_cursors=true
use_fastpath=both
[Logging]
LogFile=/run/jgt/xrdp.log
LogLevel=INFO
EnableSyslog=false
[Channels]
rdpdr=true
rdpsnd=false
drdynvc=true
cliprdr=true
rail=false
xrdpvr=false
tcutils=false
[Xorg]
name=Xorg
lib=libxup.so
username=ask
password=ask
ip=127.0.0.1
port=-1
code=20
EOF
  # sesman.ini replaces the copy's /etc/xrdp/sesman.ini (xrdp itself reads the
  # sesman port from there). The session is a placeholder "desktop": Xorg's
  # root window held open by sleep; the name lets tests find it (pgrep -u).
  cat >"$state/sesman.ini" <<EOF
[Globals]
ListenAddress=127.0.0.1
ListenPort=3350
EnableUserWindowManager=false
DefaultWindowManager=/run/jgt/xrdp-session.sh
ReconnectScript=reconnectwm.sh
[Security]
AllowRootLogin=false
MaxLoginRetry=4
TerminalServerUsers=tsusers
TerminalServerAdmins=tsadmins
AlwaysGroupCheck=false
[Sessions]
X11DisplayOffset=10
MaxSessions=50
KillDisconnected=true
DisconnectedTimeLimit=0
IdleTimeLimit=0
Policy=Default
[Logging]
LogFile=/run/jgt/xrdp-sesman.log
LogLevel=INFO
EnableSyslog=false
[Xorg]
param=/usr/lib/xorg/Xorg
param=-config
param=xrdp/xorg.conf
param=-noreset
param=-nolisten
param=tcp
param=-logfile
param=/tmp/.xorgxrdp.%s.log
[Chansrv]
FuseMountName=thinclient_drives
FileUmask=077
[ChansrvLogging]
LogLevel=INFO
EnableSyslog=false
[SessionVariables]
EOF
  printf '#!/bin/sh\n# jitgate xrdp test host: the session of a logged-in account.\nexec sleep infinity\n' >"$state/xrdp-session.sh"
  chmod 0755 "$state/xrdp-session.sh"
  # The session runs as the account: it must reach the script through /run/jgt (0700 by ssh-host.sh).
  chmod 0711 "$state"

  # Inside the host: install the configs into its private /etc and start
  # sesman and xrdp in the host's namespaces (killed with it by `down`).
  # setsid + files for stdio: nobody waits on our pipes.
  nsenter -t "$pid" -m -u -i -n -p -- /bin/sh -c '
    cp /run/jgt/sesman.ini /etc/xrdp/sesman.ini
    cp /run/jgt/xrdp.ini /etc/xrdp/xrdp.ini
    mkdir -p /run/xrdp /run/xrdp/sockdir && chmod 1777 /run/xrdp/sockdir
    mkdir -p -m 1777 /tmp/.X11-unix
    setsid /usr/sbin/xrdp-sesman --nodaemon </dev/null >>/run/jgt/host.log 2>&1 &
    setsid /usr/sbin/xrdp --nodaemon </dev/null >>/run/jgt/host.log 2>&1 &
  '

  # Ready when xrdp accepts a TCP connection (builtins only, as in ssh-host.sh).
  local ok=0 i tick probe
  exec {tick}<> <(:)
  for (( i = 0; i < 2500; i++ )); do
    if { exec {probe}<>"/dev/tcp/$addr/$RDP_PORT"; } 2>/dev/null; then exec {probe}>&-; ok=1; break; fi
    read -r -t 0.004 -u "$tick" _ || true
  done
  if [ "$ok" != 1 ]; then
    cat "$state/host.log" "$state/xrdp.log" >&2 2>/dev/null || true
    bash "$HERE/ssh-host.sh" down "$state" >/dev/null 2>&1 || true
    die "xrdp did not come up"
  fi

  local json
  json=$(<"$state/env.json")
  json="${json%\}},\"rdpPort\":$RDP_PORT,\"rdpCertSha256\":\"$fp\",\"rdpCertPath\":\"$state/xrdp-cert.pem\",\"rdpLog\":\"$state/xrdp.log\",\"sesmanLog\":\"$state/xrdp-sesman.log\"}"
  printf '%s\n' "$json" >"$state/env.json"
  trap - ERR
  printf '%s\n' "$json"
}

cmd_install_deps() {
  [ "$EUID" = 0 ] || die "must run as root"
  local pkgs
  mapfile -t pkgs < <(sed 's/#.*//' "$HERE/deps-optional/xrdp.txt" | tr -s ' \t' '\n' | grep -v '^$')
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start xrdp on the machine itself: the test hosts run their own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

case "${1:-}" in
  install-deps) cmd_install_deps ;;
  up) cmd_up "${2:-}" ;;
  down) exec bash "$HERE/ssh-host.sh" down "${2:-}" ;;
  *) die "usage: $0 up <state-dir> | down <state-dir> | install-deps" ;;
esac
