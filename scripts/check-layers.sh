#!/usr/bin/env bash
# Dependencies point one way (../shared/STYLE.md §1): core/ and config/ import
# nothing from the other areas; provisioner/ and recorder/ never import gateway/.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
check() { # dir, forbidden-pattern
  local hits
  hits=$(grep -rnE "from '(\.\./)+($2)/" --include='*.ts' "$1" 2>/dev/null | grep -v '\.test\.ts:' || true)
  if [ -n "$hits" ]; then echo "layering: $1 must not import $2:"; echo "$hits"; bad=1; fi
}
check core 'config|gateway|provisioner|recorder|web'
check config 'gateway|provisioner|recorder|web'
check provisioner 'gateway|recorder|web'
check recorder 'gateway|provisioner|web'
# Wiring lives in app/; test-only code (test/) never ships in the production tree.
check gateway 'app|test'
check provisioner 'app|test'
check recorder 'app|test'
check core 'app|test'
check config 'app|test'
[ $bad -eq 0 ] && echo "layering ok"
exit $bad
