#!/usr/bin/env bash
# Install node_modules exactly from the committed lock file. The lock file
# lists every platform's optional packages (rollup, msgpackr-extract), so
# `npm ci` accepts it everywhere and never rewrites it: a user's checkout
# stays clean. After changing dependencies, regenerate it with `npm install`
# and commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
