#!/usr/bin/env bash
# Installs what the tests need (scripts/install.sh), then runs the whole suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
