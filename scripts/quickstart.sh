#!/usr/bin/env bash
# First command of the README: install what is missing, build, and start the
# gateway with embedded defaults (PGlite database and a private Redis in
# ./data). Ctrl-C stops it and everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then bash scripts/install-system-deps.sh
  else echo "redis-server is missing: sudo apt-get install -y redis-server" >&2; exit 1; fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then bash scripts/npm-install.sh; fi
npx tsc -p tsconfig.build.json && node --import tsx scripts/build-cli.ts
node --import tsx web/build.ts
cmd=serve
if [ "${1:-}" = demo ]; then cmd=demo; shift; fi
exec node bin/jitgate.js "$cmd" "$@"
