#!/usr/bin/env bash
# The domain half of `jitgate demo` (docs/demo.md): a throw-away Samba AD DC
# that is also a Linux SSH host whose users come from the domain (winbind), all
# in one network namespace with a private mount namespace, so a JIT *domain*
# account created over LDAPS can log in with ssh, and nothing touches this
# machine's /etc, PAM or NSS.
#
#   scripts/demo-ad-host.sh up <state-dir>     start; writes <state-dir>/env.json and prints it on one line
#   scripts/demo-ad-host.sh down <state-dir>   stop it and remove <state-dir> (idempotent)
#
# The domain, its snapshot, network, certificates and teardown are those of
# scripts/samba-ad.sh (same cached snapshot, same jgt-ad-* namespaces, so its
# cleanup-all removes these too). Needs root, scripts/deps/samba.txt and
# scripts/deps/ssh.txt; the NSS and PAM winbind modules are fetched once with
# `apt-get download` into the test cache and visible inside the namespace only
# (never installed: their maintainer scripts edit the host's nsswitch.conf and
# PAM). Exit code 3: the modules could not be fetched (offline).
set -euo pipefail

HERE=${BASH_SOURCE[0]%/*}
[ "$HERE" != "${BASH_SOURCE[0]}" ] || HERE=.
HERE=$(cd "$HERE" && pwd)

# Reuse scripts/samba-ad.sh's functions (snapshot, network, certs, smb.conf,
# down) without running its command dispatch. Editing samba-ad.sh would change
# its snapshot's cache key, so it is read, not modified.
# shellcheck source=/dev/null
source <(sed '/^case "\${1:-}" in$/,$d' "$HERE/samba-ad.sh")
declare -F ensure_snapshot setup_network make_certs write_smb_conf wait_for_ldaps cmd_down json_escape >/dev/null \
  || { echo "demo-ad-host: scripts/samba-ad.sh no longer provides the functions this script reuses" >&2; exit 1; }
# Its snapshot name hashes samba-ad.sh itself; BASH_SOURCE is /dev/fd/N here.
snapshot_path() {
  local hash
  hash=$(sha256sum "$HERE/samba-ad.sh" | cut -c1-16)
  printf '%s/samba-ad-%s-%s.tar' "$CACHE_DIR" "$(samba_version)" "$hash"
}

dlog() { printf 'demo-ad-host: %s\n' "$*" >&2; }

# libnss_winbind.so.2 and pam_winbind.so of exactly the installed samba
# version, extracted (not installed) into the cache. Prints the directory
# holding lib/<triplet>/...
winbind_modules() {
  local ver dir work
  ver=$(dpkg-query -W -f='${Version}' winbind 2>/dev/null) || { dlog "the winbind package is not installed (it comes with samba)"; return 3; }
  dir="$CACHE_DIR/winbind-modules-${ver//[^A-Za-z0-9.+~-]/_}"
  mkdir -p "$CACHE_DIR"
  # Two parallel first runs must not both fetch; the second one waits.
  exec 7>"$CACHE_DIR/.winbind-modules.lock"
  flock 7
  if [[ ! -f "$dir/.complete" ]]; then
    work=$(mktemp -d "$CACHE_DIR/winbind-modules.XXXXXX")
    if ! (cd "$work" && timeout 90 apt-get download -q -o Acquire::Retries=0 "libnss-winbind=$ver" "libpam-winbind=$ver") >"$work/apt.log" 2>&1; then
      dlog "could not fetch libnss-winbind and libpam-winbind $ver with apt-get download (offline? apt-get update needed?):"
      tail -n 5 "$work/apt.log" >&2
      rm -rf -- "$work"
      return 3
    fi
    mkdir -p "$work/x"
    local deb
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
    rm -rf -- "$dir"
    mv "$work/x" "$dir"
    : >"$dir/.complete"
    rm -rf -- "$work"
  fi
  flock -u 7
  exec 7>&-
  printf '%s' "$dir"
}

cmd_up() {
  local state=$1 modules snap
  [[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
  command -v samba >/dev/null || die "samba is not installed (see scripts/deps/samba.txt)"
  command -v winbindd >/dev/null || die "winbindd is not installed (apt-get install winbind)"
  [[ -x /usr/sbin/sshd ]] || die "sshd is not installed (see scripts/deps/ssh.txt)"
  modules=$(winbind_modules) || exit 3

  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  [[ ! -e "$state/netns" ]] || die "state dir already holds a host: $state"
  chmod 0700 "$state"
  touch "$state/.jitgate-samba-ad"
  trap 'rc=$?; if (( rc != 0 )); then cmd_down "$state"; fi' EXIT

  ssh-keygen -q -t ed25519 -N '' -C jitgate-demo-domain -f "$state/ssh_host_ed25519_key" &
  local kg=$!
  # Root's key for the demo's local (ssh) account store of this host, which logs
  # JIT domain accounts off at teardown (kills their processes).
  ssh-keygen -q -t ed25519 -N '' -C jitgate-provisioner -f "$state/admin_ed25519" &
  local kg2=$!

  snap=$(snapshot_path)
  ensure_snapshot "$snap"
  mkdir -p "$state"/{etc,lock,cache,bind-dns,run/ncalrpc,log,tls}
  tar -C "$state" -xf "$snap"

  NETNS='' HOST_ADDR='' DC_ADDR=''
  setup_network "$state"
  make_certs "$state/tls" "$DC_ADDR"
  write_smb_conf "$state" "$DC_ADDR"
  # Inside the host the state dir is at /run/jgt (its /tmp is private); the
  # later `server services` line overrides samba-ad.sh's `ldap`.
  sed -i "s#${state}/#/run/jgt/#g" "$state/etc/smb.conf"
  cat >>"$state/etc/smb.conf" <<'CONF'
	# winbindd makes domain users Linux users of this host (NSS, PAM); it
	# talks to the DC's own netlogon/samr/lsa over ncalrpc (the rpc service).
	# On a DC winbind always names users DOMAIN\user (`winbind use default
	# domain` is not applied there); logging in as plain `user` works.
	server services = ldap, rpc, winbindd
	template shell = /bin/bash
	template homedir = /home/%U
CONF
  printf '%s\n' "$modules" >"$state/winbind-modules"
  printf '%s %s\n' "$DC_ADDR" 'dc1.jittest.lan dc1' >"$state/hosts-line"

  cat >"$state/sshd_config" <<CONF
ListenAddress $DC_ADDR:22
HostKey /run/jgt/ssh_host_ed25519_key
PidFile none
# Root only with the key of the demo's local store (Match below).
PermitRootLogin no
PubkeyAuthentication no
# JIT domain accounts log in with their password: PAM (pam_winbind) asks the DC.
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 50
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
# The demo's local account store (demo-domain-local) connects as root with its
# key, to log JIT domain accounts off; no one else may use keys.
Match User root
	PermitRootLogin prohibit-password
	PubkeyAuthentication yes
	AuthorizedKeysFile /run/jgt/admin_ed25519.pub
CONF
  wait "$kg" "$kg2"

  # setsid: the host leads its own process group (samba-ad.sh's `down` kills
  # the group in samba.pid, then everything left in the netns). --kill-child:
  # if unshare dies, PID 1 of the host dies and takes everything along.
  setsid ip netns exec "$NETNS" unshare --mount --uts --ipc --pid --fork --mount-proc --kill-child \
    bash "$HERE/demo-ad-host-init.sh" "$state" </dev/null >"$state/host.log" 2>&1 &
  local pid=$!
  printf '%s' "$pid" >"$state/samba.pid"
  wait_for_ldaps "$state" "$NETNS" "$DC_ADDR" "$pid" || { tail -n 20 "$state/host.log" >&2; die "samba did not come up"; }

  # Ready when sshd accepts TCP and winbind resolves a domain user inside the host.
  local init_pid='' i ok=0 probe
  for (( i = 0; i < 600; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    [[ -n "$init_pid" ]] || read -r init_pid _ <"/proc/$pid/task/$pid/children" 2>/dev/null || true
    if [[ -n "$init_pid" ]] && { exec {probe}<>"/dev/tcp/$DC_ADDR/22"; } 2>/dev/null; then
      exec {probe}>&-
      if nsenter -t "$init_pid" -m -p -- getent passwd "$SVC_USER" >/dev/null 2>&1; then ok=1; break; fi
    fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    tail -n 30 "$state/host.log" "$state/log/samba.log" >&2 2>/dev/null || true
    die "sshd or winbind did not come up"
  fi

  local pub fp _bits
  read -r pub <"$state/ssh_host_ed25519_key.pub"
  read -r _bits fp _ < <(ssh-keygen -l -E sha256 -f "$state/ssh_host_ed25519_key.pub")
  # The bind password in a file of its own, for `file:` secret references.
  (umask 077; printf '%s' "$SVC_PASSWORD" >"$state/bind-password")

  local json
  json=$(printf '{"netns":"%s","hostAddress":"%s","dcAddress":"%s","url":"ldaps://%s:636","caCertPath":"%s","baseDn":"%s","usersContainer":"%s","jitOu":"%s","bindDn":"%s","bindPasswordPath":"%s","bindPassword":"%s","adminGroupDns":{"JIT Admins":"%s","Helpdesk":"%s"},"realm":"%s","domain":"%s","upnSuffix":"%s","sshAddress":"%s","sshPort":22,"hostKeyPublic":"%s","hostKeySha256":"%s","adminUser":"root","adminKeyPath":"%s","pid":%s,"initPid":%s,"stateDir":"%s"}' \
    "$NETNS" "$HOST_ADDR" "$DC_ADDR" "$DC_ADDR" "$(json_escape "$state/tls/ca.pem")" \
    "$BASE_DN" "$USERS_CONTAINER" "$JIT_OU" "CN=${SVC_USER},${USERS_CONTAINER}" "$(json_escape "$state/bind-password")" "$SVC_PASSWORD" \
    "CN=JIT Admins,${USERS_CONTAINER}" "CN=Helpdesk,${USERS_CONTAINER}" \
    "$REALM" "$DOMAIN" "jittest.lan" "$DC_ADDR" "$(json_escape "$pub")" "$fp" "$(json_escape "$state/admin_ed25519")" "$pid" "$init_pid" "$(json_escape "$state")")
  printf '%s\n' "$json" >"$state/env.json"
  printf '%s\n' "$json"
  trap - EXIT
}

case "${1:-}" in
  up) [[ $# -eq 2 ]] || die "usage: $0 up <state-dir>"; cmd_up "$2" ;;
  down) [[ $# -eq 2 ]] || die "usage: $0 down <state-dir>"; cmd_down "$2" ;;
  *) die "usage: $0 up <state-dir> | down <state-dir>" ;;
esac
