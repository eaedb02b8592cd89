#!/usr/bin/env bash
# Bring a throwaway Samba AD DC up/down inside its own network namespace for
# the LDAP account-store integration tests. See docs/samba-ad-harness.md.
#
#   scripts/samba-ad.sh up <state-dir>     # prints one JSON line, writes <state-dir>/env.json
#   scripts/samba-ad.sh down <state-dir>   # idempotent, works after a crash
#   scripts/samba-ad.sh cleanup-all        # every jgt-ad-* namespace and its processes
#
# Needs root, the packages in scripts/deps/samba.txt, no network access.
set -euo pipefail

readonly REALM=JITTEST.LAN
readonly DOMAIN=JITTEST
readonly HOSTNAME_DC=DC1
readonly BASE_DN='DC=jittest,DC=lan'
readonly USERS_CONTAINER="CN=Users,${BASE_DN}"
readonly JIT_OU="OU=JIT,${BASE_DN}"
readonly ADMIN_PASSWORD='Adm1n-Jitgate-Test!'
readonly SVC_USER='svc-jitgate'
readonly SVC_PASSWORD='Svc-Jitgate-Test-1!'
readonly NS_PREFIX='jgt-ad-'
readonly CACHE_DIR="${JITGATE_TEST_CACHE:-/var/tmp/jitgate-test-cache}"
readonly LOCK_FILE=/run/jitgate-samba-ad.lock
# One file per live namespace holding its state dir, so cleanup-all can remove those too.
readonly REGISTRY=/run/jitgate-samba-ad
readonly LDAPS_WAIT_SECONDS="${JITGATE_SAMBA_WAIT_SECONDS:-60}"

log() { printf 'samba-ad: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- teardown -------------------------------------------------------------

kill_netns_processes() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [[ -z "$pids" ]] && return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 30); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z "$pids" ]] && return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

remove_netns() {
  local ns=$1
  kill_netns_processes "$ns"
  ip netns del "$ns" 2>/dev/null || true
}

cmd_down() {
  local state=$1 ns='' veth='' pid=''
  [[ -f "$state/netns" ]] && ns=$(<"$state/netns")
  [[ -f "$state/veth" ]] && veth=$(<"$state/veth")
  [[ -f "$state/samba.pid" ]] && pid=$(<"$state/samba.pid")
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # samba was started with setsid: its pid is its process group id. SIGKILL
    # straight away: the database is thrown away, and SIGTERM takes ~1.3 s.
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if [[ -n "$ns" && "$ns" == "$NS_PREFIX"* ]]; then
    remove_netns "$ns"
    rm -f -- "$REGISTRY/$ns"
  fi
  # Deleting the namespace destroys the veth pair; this covers a crash between
  # creating the pair and moving one end into the namespace.
  if [[ -n "$veth" ]]; then ip link del "$veth" 2>/dev/null || true; fi
  # Only remove directories this script created (marker file), never an arbitrary path.
  if [[ -d "$state" && -f "$state/.jitgate-samba-ad" ]]; then rm -rf -- "$state"; fi
}

cmd_cleanup_all() {
  local ns link
  local entry
  for entry in "$REGISTRY"/"$NS_PREFIX"*; do
    [[ -f "$entry" ]] || continue
    cmd_down "$(<"$entry")"
    rm -f -- "$entry"
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ "$ns" == "$NS_PREFIX"* ]] && remove_netns "$ns"
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    [[ "$link" == jgtad*h ]] && ip link del "$link" 2>/dev/null || true
  done
}

# --- provisioning snapshot ------------------------------------------------

samba_version() { samba -V | awk '{print $2}'; }

snapshot_path() {
  local hash
  hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
  printf '%s/samba-ad-%s-%s.tar' "$CACHE_DIR" "$(samba_version)" "$hash"
}

# Fresh provision plus fixtures, done offline on the database files (no
# server running, no network), then archived. Nothing in the provisioned
# database depends on the DC's IP address (dns backend NONE), so one
# snapshot serves every namespace.
provision_snapshot() {
  local snap=$1 work
  mkdir -p "$CACHE_DIR"
  work=$(mktemp -d "$CACHE_DIR/provision.XXXXXX")
  # An empty config file keeps samba-tool away from the host's /etc/samba/smb.conf.
  : >"$work/empty.conf"
  local t="$work/t" conf="$work/t/etc/smb.conf"
  log "provisioning a fresh domain (cached afterwards in $snap)"
  if ! samba-tool domain provision -s "$work/empty.conf" --targetdir="$t" \
      --realm="$REALM" --domain="$DOMAIN" --server-role=dc --dns-backend=NONE \
      --host-name="$HOSTNAME_DC" --adminpass="$ADMIN_PASSWORD" \
      --option='server services = ldap' >"$work/provision.log" 2>&1; then
    tail -n 30 "$work/provision.log" >&2
    rm -rf -- "$work"
    die "samba-tool domain provision failed"
  fi
  local H=(-s "$conf" -H "tdb://$t/private/sam.ldb")
  {
    samba-tool ou create "$JIT_OU" "${H[@]}"
    samba-tool group add 'JIT Admins' --group-scope=Global --group-type=Security "${H[@]}"
    samba-tool group add 'Helpdesk' --group-scope=Global --group-type=Security "${H[@]}"
    samba-tool user create "$SVC_USER" "$SVC_PASSWORD" "${H[@]}"
    samba-tool user setexpiry "$SVC_USER" --noexpiry "${H[@]}"
    # Simplest robust delegation: Domain Admins can create/delete users in the
    # OU and modify any group's member attribute. Production uses a delegated
    # OU ACL instead (docs/samba-ad-harness.md).
    samba-tool group addmembers 'Domain Admins' "$SVC_USER" "${H[@]}"
    samba-tool domain passwordsettings set --min-pwd-age=0 "${H[@]}"
  } >>"$work/provision.log" 2>&1 || {
    tail -n 30 "$work/provision.log" >&2
    rm -rf -- "$work"
    die "creating the test fixtures failed"
  }
  tar -C "$t" -cf "$work/snap.tar" private state
  mv -f "$work/snap.tar" "$snap"
  rm -rf -- "$work"
  # Snapshots of older script versions / samba versions are dead weight (~35 MB each).
  find "$CACHE_DIR" -maxdepth 1 -name 'samba-ad-*.tar' ! -path "$snap" -delete 2>/dev/null || true
}

ensure_snapshot() {
  local snap=$1
  [[ -f "$snap" ]] && return 0
  mkdir -p "$CACHE_DIR"
  # Two parallel `up` calls must not both provision; the second one waits.
  exec 8>"$CACHE_DIR/.provision.lock"
  flock 8
  [[ -f "$snap" ]] || provision_snapshot "$snap"
  flock -u 8
  exec 8>&-
}

# --- network --------------------------------------------------------------

# Picks X for 10.200.X.0/30 (host .1, DC .2) not used by any interface on the
# host, and creates the namespace + veth pair while holding a lock so two
# parallel `up` calls cannot pick the same X.
setup_network() {
  local state=$1 x used ns veth_h veth_n
  exec 9>"$LOCK_FILE"
  flock 9
  used=$(ip -o -4 addr show 2>/dev/null | grep -o '10\.200\.[0-9]*\.' | cut -d. -f3 | sort -u || true)
  for _ in $(seq 1 200); do
    x=$(( (RANDOM % 250) + 1 ))
    grep -qx "$x" <<<"$used" || break
    x=''
  done
  [[ -n "$x" ]] || die "no free 10.200.X.0/30 subnet"
  ns="${NS_PREFIX}${x}-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  veth_h="jgtad${x}h"
  veth_n="jgtad${x}n"
  printf '%s' "$ns" >"$state/netns"
  printf '%s' "$veth_h" >"$state/veth"
  mkdir -p "$REGISTRY"
  printf '%s' "$state" >"$REGISTRY/$ns"
  ip netns add "$ns"
  ip link add "$veth_h" type veth peer name "$veth_n"
  ip link set "$veth_n" netns "$ns"
  ip addr add "10.200.${x}.1/30" dev "$veth_h"
  ip link set "$veth_h" up
  ip -n "$ns" addr add "10.200.${x}.2/30" dev "$veth_n"
  ip -n "$ns" link set "$veth_n" up
  ip -n "$ns" link set lo up
  flock -u 9
  exec 9>&-
  NETNS=$ns
  HOST_ADDR="10.200.${x}.1"
  DC_ADDR="10.200.${x}.2"
}

# --- TLS ------------------------------------------------------------------

# A per-run EC P-256 CA and server certificate (milliseconds, unlike the
# RSA-4096 one Samba would generate). SAN: the DC's IP, its hostnames, and
# 127.0.0.1 for tests that reach the DC through a loopback proxy.
make_certs() {
  local dir=$1 ip=$2
  mkdir -p "$dir"
  (
    cd "$dir"
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj '/CN=jitgate test CA' \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
      -out ca.pem 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
    openssl req -new -key key.pem -subj '/CN=dc1.jittest.lan' -out server.csr 2>/dev/null
    printf '%s\n' \
      "subjectAltName=IP:${ip},IP:127.0.0.1,DNS:dc1.jittest.lan,DNS:dc1" \
      'basicConstraints=critical,CA:FALSE' \
      'keyUsage=critical,digitalSignature' \
      'extendedKeyUsage=serverAuth' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
      -extfile server.ext -out cert.pem 2>/dev/null
    rm -f server.csr server.ext ca.srl ca.key
    chmod 600 key.pem
    chmod 644 ca.pem cert.pem
  )
}

write_smb_conf() {
  local state=$1 ip=$2
  cat >"$state/etc/smb.conf" <<EOF
# Written by scripts/samba-ad.sh; private to this test DC.
[global]
	netbios name = ${HOSTNAME_DC}
	realm = ${REALM}
	workgroup = ${DOMAIN}
	server role = active directory domain controller
	server services = ldap
	interfaces = ${ip}
	bind interfaces only = yes
	private dir = ${state}/private
	lock directory = ${state}/lock
	state directory = ${state}/state
	cache directory = ${state}/cache
	binddns dir = ${state}/bind-dns
	pid directory = ${state}/run
	ncalrpc dir = ${state}/run/ncalrpc
	log file = ${state}/log/samba.log
	log level = 1
	tls enabled = yes
	tls keyfile = ${state}/tls/key.pem
	tls certfile = ${state}/tls/cert.pem
	tls cafile = ${state}/tls/ca.pem
	# Without this an old password keeps working for an hour after a reset
	# (MS-ADTS 3.1.1.3.1.5.2 / Samba "old password allowed period").
	old password allowed period = 0
EOF
}

wait_for_ldaps() {
  local state=$1 ns=$2 ip=$3 pid=$4 deadline
  deadline=$(( $(date +%s) + LDAPS_WAIT_SECONDS ))
  while (( $(date +%s) < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "samba exited during startup; last log lines:"
      tail -n 30 "$state/log/samba.log" "$state/samba.out" >&2 2>/dev/null || true
      return 1
    fi
    if openssl s_client -connect "${ip}:636" -CAfile "$state/tls/ca.pem" -verify_return_error \
        -brief </dev/null >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "LDAPS on ${ip}:636 did not answer within ${LDAPS_WAIT_SECONDS}s; last log lines:"
  tail -n 30 "$state/log/samba.log" "$state/samba.out" >&2 2>/dev/null || true
  return 1
}

json_escape() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }

cmd_up() {
  local state=$1 snap
  [[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
  command -v samba >/dev/null || die "samba is not installed (see scripts/deps/samba.txt)"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  touch "$state/.jitgate-samba-ad"
  # Anything failing from here on tears down what was built.
  trap 'rc=$?; if (( rc != 0 )); then cmd_down "$state"; fi' EXIT

  snap=$(snapshot_path)
  ensure_snapshot "$snap"
  mkdir -p "$state"/{etc,lock,cache,bind-dns,run/ncalrpc,log,tls}
  tar -C "$state" -xf "$snap"

  NETNS='' HOST_ADDR='' DC_ADDR=''
  setup_network "$state"
  make_certs "$state/tls" "$DC_ADDR"
  write_smb_conf "$state" "$DC_ADDR"

  # setsid: samba leads its own process group so `down` can kill it whole.
  setsid ip netns exec "$NETNS" samba --foreground --no-process-group -M single \
    --configfile="$state/etc/smb.conf" </dev/null >"$state/samba.out" 2>&1 &
  local pid=$!
  printf '%s' "$pid" >"$state/samba.pid"
  wait_for_ldaps "$state" "$NETNS" "$DC_ADDR" "$pid" || die "samba did not come up"

  local json
  json=$(printf '{"netns":"%s","hostAddress":"%s","dcAddress":"%s","url":"ldaps://%s:636","startTlsUrl":"ldap://%s:389","caCertPath":"%s","baseDn":"%s","usersContainer":"%s","jitOu":"%s","bindDn":"%s","bindPassword":"%s","adminDn":"%s","adminPassword":"%s","adminGroupDns":{"JIT Admins":"%s","Helpdesk":"%s"},"realm":"%s","upnSuffix":"%s","pid":%s,"stateDir":"%s"}' \
    "$NETNS" "$HOST_ADDR" "$DC_ADDR" "$DC_ADDR" "$DC_ADDR" "$(json_escape "$state/tls/ca.pem")" \
    "$BASE_DN" "$USERS_CONTAINER" "$JIT_OU" "CN=${SVC_USER},${USERS_CONTAINER}" "$SVC_PASSWORD" \
    "CN=Administrator,${USERS_CONTAINER}" "$ADMIN_PASSWORD" \
    "CN=JIT Admins,${USERS_CONTAINER}" "CN=Helpdesk,${USERS_CONTAINER}" \
    "$REALM" "jittest.lan" "$pid" "$(json_escape "$state")")
  printf '%s\n' "$json" >"$state/env.json"
  printf '%s\n' "$json"
  trap - EXIT
}

case "${1:-}" in
  up) [[ $# -eq 2 ]] || die "usage: $0 up <state-dir>"; cmd_up "$2" ;;
  down) [[ $# -eq 2 ]] || die "usage: $0 down <state-dir>"; cmd_down "$2" ;;
  cleanup-all) cmd_cleanup_all ;;
  *) die "usage: $0 up <state-dir> | down <state-dir> | cleanup-all" ;;
esac
