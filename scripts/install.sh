#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine, idempotently:
# Debian packages (nginx, Slurm, munge, Chromium, Node.js), configurable-http-proxy from npm,
# and a virtual environment in .venv with this project and its test extras.
#
# The venv is built from Debian's /usr/bin/python3 (not a per-user Python such as pyenv under
# /root) so that Slurm jobs running as an unprivileged user can execute it.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(python3-venv python3-dev nginx slurmctld slurmd slurm-client munge sudo chromium nodejs npm curl bubblewrap util-linux nftables iproute2 postgresql systemd openssl slapd ldap-utils)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if [ "$pkg" = nodejs ] || [ "$pkg" = npm ]; then
    command -v "${pkg/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v configurable-http-proxy >/dev/null 2>&1; then
  echo "install: configurable-http-proxy (npm)"
  $SUDO npm install -g --no-fund --no-audit configurable-http-proxy >/dev/null 2>&1
fi

if [ ! -x .venv/bin/python ]; then
  echo "install: virtual environment in .venv"
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
echo "install: Python packages (pip install -e '.[test]')"
.venv/bin/pip install -q -e ".[test]"
echo "install: done"
