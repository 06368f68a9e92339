#!/usr/bin/env bash
# The README's main command: set up, then run `epolltrack demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo "$@"
