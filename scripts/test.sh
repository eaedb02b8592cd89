#!/usr/bin/env bash
# The whole test suite: typecheck, lint, circular-import check, unit and
# integration tests against real services (Redis, PostgreSQL, Samba AD,
# sshd hosts) that the suite starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then bash scripts/install-system-deps.sh; fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then bash scripts/npm-install.sh; fi
step() { printf '\n== %s\n' "$1"; }
step "typecheck"; npx tsc -p tsconfig.json --noEmit
step "typecheck web"; npx tsc -p web/tsconfig.json --noEmit
step "lint"; npx eslint .
step "circular imports"; npx dpdm --no-warning --no-tree --exit-code circular:1 -T app/cli.ts app/main.ts
step "layering"; bash scripts/check-layers.sh
step "build"; npx tsc -p tsconfig.build.json && node --import tsx scripts/build-cli.ts
step "build web app"; node --import tsx web/build.ts
step "tests"; npx vitest run "$@"
