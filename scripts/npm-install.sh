#!/usr/bin/env bash
# Install node_modules from the lock file. npm 11.19 writes lock files that
# leave out other platforms' optional packages and then refuses them in
# `npm ci` ("Missing: @rollup/rollup-android-arm-eabi@ from lock file"), so
# fall back to `npm install`, which resolves to the same locked versions.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! npm ci --no-audit --no-fund 2>/tmp/jitgate-npm-ci.err; then
  echo "npm ci refused the lock file ($(grep -m1 -o 'Missing: [^ ]*' /tmp/jitgate-npm-ci.err || echo 'see npm log')); using npm install" >&2
  npm install --no-audit --no-fund
fi
