#!/bin/bash
# Install the node side of jupyter-hybrid-cloud into a node image (docs/node-image.md).
# Run it as root on the image builder: as cloud-init user-data of a builder instance, as a Packer
# shell provisioner, or by hand. Then create the AMI and run publish-ami.sh with its id.
#
# Settings (environment):
#   PYTHON       interpreter of the image, 3.9 or newer           (default: python3)
#   PREFIX       where the world-readable virtual environment goes (default: /opt/jupyter)
#   WHEELHOUSE   a directory of wheels for a site without an index: pip then installs with
#                --no-index --find-links "$WHEELHOUSE" (build it with `pip wheel`, see the docs)
#   PACKAGES     what to install (default: the distribution with the Lab extension)
#   MOUNT_HOME   mount-home.sh to install as $SBIN_DIR/hybrid-mount-home, which boot scripts call
#                for an EC2 home volume (default: the one beside this script, if there)
#   SBIN_DIR     default: /usr/local/sbin
#   CLOUD_CFG_DIR  cloud-init's drop-in directory (default: /etc/cloud/cloud.cfg.d; skipped when
#                absent)
set -euo pipefail

PYTHON=${PYTHON:-python3}
PREFIX=${PREFIX:-/opt/jupyter}
PACKAGES=${PACKAGES:-"jupyter-hybrid-cloud[lab]"}

"$PYTHON" - <<'PY' || { echo "install-node: $PYTHON is older than 3.9; the node side needs 3.9+" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 9) else 1)
PY

"$PYTHON" -m venv "$PREFIX"
pip_args=()
if [ -n "${WHEELHOUSE:-}" ]; then
    [ -d "$WHEELHOUSE" ] || { echo "install-node: WHEELHOUSE $WHEELHOUSE is not a directory" >&2; exit 2; }
    pip_args=(--no-index --find-links "$WHEELHOUSE")
fi
# shellcheck disable=SC2086  # PACKAGES is a list of requirement strings
"$PREFIX/bin/pip" install "${pip_args[@]}" $PACKAGES
# Jobs and servers run as the researcher: everyone reads and runs, nobody but root writes.
chmod -R a+rX,go-w "$PREFIX"

# The home volume mounter (EC2Spawner.home_mount_command, docs/ec2.md).
MOUNT_HOME=${MOUNT_HOME:-$(dirname "$0")/mount-home.sh}
if [ -f "$MOUNT_HOME" ]; then
    install -D -m 0755 "$MOUNT_HOME" "${SBIN_DIR:-/usr/local/sbin}/hybrid-mount-home"
fi

# User-data at every boot, not only the first: a node stopped by EC2Spawner.stop_action = "stop"
# is started with new user-data holding a fresh single-use credential (the first one is spent).
# cloud-init's default runs scripts-user once per instance; this list keeps the usual final
# modules and makes that one "always".
CLOUD_CFG_DIR=${CLOUD_CFG_DIR:-/etc/cloud/cloud.cfg.d}
if [ -d "$CLOUD_CFG_DIR" ]; then
    cat > "$CLOUD_CFG_DIR/90-hybrid-user-data-every-boot.cfg" <<'CFG'
# jupyter-hybrid-cloud: run the node bootstrap (user-data) at every boot (docs/ec2.md, stop and resume)
cloud_final_modules:
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - [scripts-user, always]
  - ssh-authkey-fingerprints
  - keys-to-console
  - final-message
  - power-state-change
CFG
fi

# The node agent is what the boot script starts; fail the image build, not the first spawn.
"$PREFIX/bin/python" -c "import hybrid_spawner.node_agent, voila_publisher.extension"
echo "install-node: node side installed in $PREFIX; set c.EC2Spawner.node_python = \"$PREFIX/bin/python\""
