#!/usr/bin/env bash
# A multi-node jitgate on one machine (docs/deploy.md), the topology of
# docker/compose.yaml with two of each jitgate role:
#
#   HAProxy ── HTTP + websockets ──► gw1, gw2   (jitgate serve --role gateway)
#           └─ SSH front door (TCP) ─► gw1, gw2   health-checked on /readyz
#   w1, w2   (jitgate serve --role worker)
#   PostgreSQL (Debian's, a private cluster; unix socket only)
#   Redis (appendonly yes, loopback TCP)
#
# Every process is a separate OS process with a pid file, so a test (or an
# operator trying it) can SIGKILL exactly one of them.
#
#   scripts/multinode.sh up <state-dir>        start everything, wait until ready, print env.json
#   scripts/multinode.sh down <state-dir>      stop everything and remove <state-dir>
#   scripts/multinode.sh start <name> <state-dir>   (re)start one: postgres redis haproxy gw1 gw2 w1 w2
#   scripts/multinode.sh stop <name> <state-dir>    SIGTERM (PostgreSQL: fast shutdown), wait
#   scripts/multinode.sh kill <name> <state-dir>    SIGKILL, wait
#   scripts/multinode.sh wipe-redis <state-dir>     SIGKILL Redis, delete its data (AOF), start a fresh one
#   scripts/multinode.sh status <state-dir>
#
# Settings (environment, read by `up`; kept in <state-dir>/settings.env for the other commands):
#   MULTINODE_CONFIG       the jitgate.yaml every process reads (account stores, identity, ...); default: a minimal one.
#                          The script's own settings below go in as JITGATE_* variables, which win over the file.
#   MULTINODE_BASE_PORT    default 18400: haproxy HTTP = base, haproxy SSH = base+1, Redis = base+2,
#                          PostgreSQL = base+3 (socket name only), gwN HTTP = base+10N, gwN SSH = base+10N+1
#   MULTINODE_FROM_SOURCE  1: run app/cli.ts with tsx instead of the built dist/ (`npm run build`)
#   MULTINODE_ORPHAN_CHECK_SECONDS, MULTINODE_RECONCILE_SECONDS, MULTINODE_LEASE_GRACE_SECONDS: jit.* for every process
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NAMES="postgres redis gw1 gw2 w1 w2 haproxy"

die() { echo "multinode: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found ($2)"; }

pgbin() {
  local v
  for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
    if [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then echo "/usr/lib/postgresql/$v/bin"; return; fi
  done
  die "PostgreSQL server binaries not found in /usr/lib/postgresql (scripts/deps/core.txt: postgresql)"
}

# as_pg CMD...: PostgreSQL refuses to run as root; as root run it as the postgres system user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

load() {
  S="$(cd "$1" && pwd)"
  [ -f "$S/settings.env" ] || die "$S is not a multinode state dir (no settings.env)"
  # shellcheck disable=SC1091
  . "$S/settings.env"
}

pid_of() { cat "$S/$1.pid" 2>/dev/null || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

wait_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$3 did not listen on 127.0.0.1:$1 within $2 s"
}

wait_log() { # file pattern seconds name: the pattern in what the file got since this start (offset in <name>.logoff)
  local i off
  off="$(cat "$S/$4.logoff" 2>/dev/null || echo 0)"
  for ((i = 0; i < $3 * 10; i++)); do
    tail -c "+$((off + 1))" "$1" 2>/dev/null | grep -q -- "$2" && return 0
    alive "$4" || { tail -n 30 "$1" >&2 || true; die "$4 exited before it was ready"; }
    sleep 0.1
  done
  tail -n 30 "$1" >&2 || true
  die "$4 not ready within $3 s"
}

readyz() { # port → HTTP status of GET /readyz ('' when nothing answers)
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && timeout 5 head -n 1 <&3 | awk '{print $2}' ) 2>/dev/null || true
}

cli() {
  if [ "${MULTINODE_FROM_SOURCE:-0}" = 1 ]; then
    echo "node --import tsx $ROOT/app/cli.ts"
  else
    [ -f "$ROOT/dist/app/cli.js" ] || die "not built: run npm run build (or set MULTINODE_FROM_SOURCE=1)"
    echo "node $ROOT/bin/jitgate.js"
  fi
}

start_postgres() {
  local bin; bin="$(pgbin)"
  if [ ! -f "$S/pg/data/PG_VERSION" ]; then
    mkdir -p "$S/pg"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$S/pg"
    as_pg "$bin/initdb" -D "$S/pg/data" -U jitgate --auth=trust -E UTF8 --locale=C >"$S/pg/initdb.log" 2>&1 || { cat "$S/pg/initdb.log" >&2; die "initdb failed"; }
    # unix socket only (no TCP): the socket directory is the only way in.
    as_pg sh -c "printf '%s\n' \"listen_addresses = ''\" \"unix_socket_directories = '$S/pg'\" 'max_connections = 200' >> '$S/pg/data/postgresql.auto.conf'"
  fi
  as_pg "$bin/pg_ctl" -D "$S/pg/data" -l "$S/pg/postgres.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null
  head -n 1 "$S/pg/data/postmaster.pid" >"$S/postgres.pid"
  if ! as_pg "$bin/psql" -h "$S/pg" -p "$PG_PORT" -U jitgate -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'jitgate'" | grep -q 1; then
    as_pg "$bin/createdb" -h "$S/pg" -p "$PG_PORT" -U jitgate jitgate
  fi
}

stop_postgres() { # mode: fast | immediate
  local bin; bin="$(pgbin)"
  [ -f "$S/pg/data/postmaster.pid" ] || return 0
  as_pg "$bin/pg_ctl" -D "$S/pg/data" -m "$1" -w -t 60 stop >/dev/null 2>&1 || true
}

start_redis() {
  mkdir -p "$S/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$S/redis" --appendonly yes --save '' \
    --maxmemory-policy noeviction --daemonize no --logfile "$S/redis/redis.log" >/dev/null 2>&1 &
  echo $! >"$S/redis.pid"
  wait_port "$REDIS_PORT" 20 redis
  local i
  for ((i = 0; i < 200; i++)); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] && return 0
    sleep 0.1
  done
  die "redis did not answer PING"
}

# The environment of one jitgate process: what differs between them, and what they must share.
jitgate_env() { # name role [http-port ssh-port]
  echo "JITGATE_DATA_DIR=$S/data"
  echo "JITGATE_DATABASE__URL=postgres://jitgate@/jitgate?host=$S/pg&port=$PG_PORT"
  echo "JITGATE_REDIS__URL=redis://127.0.0.1:$REDIS_PORT"
  echo "JITGATE_SECRETS__KEY=file:$S/keys/secret.key"
  echo "JITGATE_AUDIT__SIGNING_KEY=file:$S/keys/audit.key"
  echo "JITGATE_RECORDINGS__SIGNING_KEY=file:$S/keys/recording.key"
  echo "JITGATE_JIT__ORPHAN_CHECK_SECONDS=${ORPHAN_CHECK_SECONDS}"
  echo "JITGATE_JIT__RECONCILE_INTERVAL_SECONDS=${RECONCILE_SECONDS}"
  echo "JITGATE_JIT__LEASE_GRACE_SECONDS=${LEASE_GRACE_SECONDS}"
  if [ "$2" = gateway ]; then
    echo "JITGATE_SERVER__HOST=127.0.0.1"
    echo "JITGATE_SERVER__PORT=$3"
    echo "JITGATE_SSH_FRONT_DOOR__ENABLED=true"
    echo "JITGATE_SSH_FRONT_DOOR__HOST=127.0.0.1"
    echo "JITGATE_SSH_FRONT_DOOR__PORT=$4"
    # One host key for every gateway behind the proxy: clients must not see it change.
    echo "JITGATE_SSH_FRONT_DOOR__HOST_KEY_FILE=$S/keys/ssh_host_ed25519_key"
    echo "JITGATE_SERVER__TRUST_PROXY=[\"127.0.0.1\"]"
  fi
}

start_jitgate() { # name
  local role http='' ssh=''
  case "$1" in
    gw1) role=gateway; http=$((BASE_PORT + 10)); ssh=$((BASE_PORT + 11)) ;;
    gw2) role=gateway; http=$((BASE_PORT + 20)); ssh=$((BASE_PORT + 21)) ;;
    w1 | w2) role=worker ;;
  esac
  local envs=() line run
  run="$(cli)"
  if [ -f "$S/$1.log" ]; then wc -c <"$S/$1.log" >"$S/$1.logoff"; else echo 0 >"$S/$1.logoff"; fi
  while IFS= read -r line; do envs+=("$line"); done < <(jitgate_env "$1" "$role" "$http" "$ssh")
  # shellcheck disable=SC2086
  (cd "$ROOT" && exec setsid env -i PATH="$PATH" HOME="${HOME:-/root}" "${envs[@]}" \
    $run serve --role "$role" --config "$CONFIG" >>"$S/$1.log" 2>&1 </dev/null) &
  echo $! >"$S/$1.pid"
}

wait_jitgate() { # name
  case "$1" in
    gw1 | gw2)
      local port=$((BASE_PORT + ${1#gw} * 10))
      wait_log "$S/$1.log" 'ssh front door on port' 180 "$1"
      wait_port "$port" 10 "$1"
      ;;
    w1 | w2) wait_log "$S/$1.log" '"jitgate worker running"' 180 "$1" ;;
  esac
}

start_haproxy() {
  local g1=$((BASE_PORT + 10)) g2=$((BASE_PORT + 20))
  cat >"$S/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  # websockets and SSH are long-lived tunnels
  timeout tunnel 1h
  timeout client-fin 5s
  default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2
frontend http
  mode http
  bind 127.0.0.1:$BASE_PORT
  option forwardfor
  default_backend gateways_http
backend gateways_http
  mode http
  balance leastconn
  option httpchk GET /readyz
  http-check expect status 200
  server gw1 127.0.0.1:$g1 check
  server gw2 127.0.0.1:$g2 check
frontend ssh
  mode tcp
  bind 127.0.0.1:$((BASE_PORT + 1))
  default_backend gateways_ssh
backend gateways_ssh
  mode tcp
  balance leastconn
  # the front door is healthy when its gateway's /readyz is (same process)
  option httpchk GET /readyz
  http-check expect status 200
  server gw1 127.0.0.1:$((g1 + 1)) check port $g1
  server gw2 127.0.0.1:$((g2 + 1)) check port $g2
EOF
  haproxy -c -q -f "$S/haproxy.cfg" || die "haproxy -c failed"
  haproxy -db -f "$S/haproxy.cfg" >>"$S/haproxy.log" 2>&1 </dev/null &
  echo $! >"$S/haproxy.pid"
  wait_port "$BASE_PORT" 20 haproxy
}

start_one() {
  alive "$1" && die "$1 is already running (pid $(pid_of "$1"))"
  case "$1" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    haproxy) start_haproxy ;;
    gw1 | gw2 | w1 | w2) start_jitgate "$1"; wait_jitgate "$1" ;;
    *) die "unknown process $1 (one of: $NAMES)" ;;
  esac
}

signal_one() { # name signal
  if [ "$1" = postgres ]; then
    if [ "$2" = KILL ]; then stop_postgres immediate; else stop_postgres fast; fi
    rm -f "$S/postgres.pid"
    return
  fi
  local p; p="$(pid_of "$1")"
  [ -n "$p" ] || return 0
  kill "-$2" "$p" 2>/dev/null || true
  wait_gone "$p" 30 || { kill -KILL "$p" 2>/dev/null || true; wait_gone "$p" 10 || true; }
  rm -f "$S/$1.pid"
}

cmd_up() {
  [ -n "${1:-}" ] || die "usage: $0 up <state-dir>"
  need redis-server "scripts/deps/core.txt: redis-server"
  need haproxy "scripts/deps/proxy.txt: haproxy"
  need ssh-keygen "scripts/deps/ssh.txt: openssh-client"
  mkdir -p "$1"
  S="$(cd "$1" && pwd)"
  # The postgres system user must reach the socket directory inside it.
  chmod 755 "$S"
  local base="${MULTINODE_BASE_PORT:-18400}"
  local config="${MULTINODE_CONFIG:-}"
  if [ -z "$config" ]; then
    config="$S/jitgate.yaml"
    printf 'log:\n  level: info\n' >"$config"
  fi
  cat >"$S/settings.env" <<EOF
BASE_PORT=$base
REDIS_PORT=$((base + 2))
PG_PORT=$((base + 3))
CONFIG=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
MULTINODE_FROM_SOURCE=${MULTINODE_FROM_SOURCE:-0}
ORPHAN_CHECK_SECONDS=${MULTINODE_ORPHAN_CHECK_SECONDS:-10}
RECONCILE_SECONDS=${MULTINODE_RECONCILE_SECONDS:-300}
LEASE_GRACE_SECONDS=${MULTINODE_LEASE_GRACE_SECONDS:-60}
EOF
  load "$S"
  mkdir -p "$S/keys" "$S/data"
  chmod 700 "$S/keys" "$S/data"
  for k in secret audit recording; do
    [ -f "$S/keys/$k.key" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$S/keys/$k.key")
  done
  [ -f "$S/keys/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C jitgate-front-door -f "$S/keys/ssh_host_ed25519_key"
  start_postgres
  start_redis
  # One process migrates first; then the rest start side by side.
  start_jitgate gw1; wait_jitgate gw1
  start_jitgate gw2; start_jitgate w1; start_jitgate w2
  wait_jitgate gw2; wait_jitgate w1; wait_jitgate w2
  start_haproxy
  # Ready when HAProxy's health checks pass for both gateways: /readyz through it answers 200.
  local i
  for ((i = 0; i < 300; i++)); do
    [ "$(readyz "$BASE_PORT")" = 200 ] && break
    sleep 0.1
  done
  write_env
  cat "$S/env.json"
}

write_env() {
  cat >"$S/env.json" <<EOF
{
  "stateDir": "$S",
  "httpUrl": "http://127.0.0.1:$BASE_PORT",
  "sshPort": $((BASE_PORT + 1)),
  "gateways": { "gw1": { "http": $((BASE_PORT + 10)), "ssh": $((BASE_PORT + 11)) }, "gw2": { "http": $((BASE_PORT + 20)), "ssh": $((BASE_PORT + 21)) } },
  "databaseUrl": "postgres://jitgate@/jitgate?host=$S/pg&port=$PG_PORT",
  "redisUrl": "redis://127.0.0.1:$REDIS_PORT",
  "secretKeyFile": "$S/keys/secret.key",
  "auditKeyFile": "$S/keys/audit.key",
  "sshHostKeyFile": "$S/keys/ssh_host_ed25519_key"
}
EOF
}

cmd_down() {
  [ -n "${1:-}" ] || die "usage: $0 down <state-dir>"
  [ -d "$1" ] || return 0
  [ -f "$1/settings.env" ] || die "$1 is not a multinode state dir (no settings.env); not removing it"
  load "$1"
  for n in haproxy gw1 gw2 w1 w2; do signal_one "$n" TERM & done
  wait
  signal_one redis TERM
  signal_one postgres TERM
  rm -rf "$S"
}

cmd_status() {
  load "$1"
  for n in $NAMES; do
    if [ "$n" = postgres ]; then
      if as_pg "$(pgbin)/pg_ctl" -D "$S/pg/data" status >/dev/null 2>&1; then echo "$n running"; else echo "$n stopped"; fi
    elif alive "$n"; then echo "$n running (pid $(pid_of "$n"))"; else echo "$n stopped"; fi
  done
}

cmd="${1:-}"
case "$cmd" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status "${2:?state dir}" ;;
  start) load "${3:?state dir}"; start_one "${2:?name}" ;;
  stop) load "${3:?state dir}"; signal_one "${2:?name}" TERM ;;
  kill) load "${3:?state dir}"; signal_one "${2:?name}" KILL ;;
  wipe-redis)
    load "${2:?state dir}"
    signal_one redis KILL
    rm -rf "$S/redis"
    start_redis
    ;;
  *) die "usage: $0 up|down|status <state-dir> | start|stop|kill <name> <state-dir> | wipe-redis <state-dir>" ;;
esac
