#!/usr/bin/env bash
# Installs what the demo needs (scripts/install.sh), then starts the whole system on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m jupyter_config.demo "$@"
