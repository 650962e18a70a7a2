#!/usr/bin/env bash
# Installs what the tests need (scripts/install.sh), then runs the whole suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Two workers, whole test files each (module fixtures start hubs and clouds once per file): most
# integration tests wait on processes they started, so two workers fill two cores. Set
# HYBRID_TEST_WORKERS=0 to run in this one process (e.g. with a debugger).
workers="${HYBRID_TEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
fi
exec .venv/bin/python -m pytest -p no:cacheprovider -ra -n "$workers" --dist loadfile "$@"
