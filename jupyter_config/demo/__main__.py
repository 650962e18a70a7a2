"""``python -m jupyter_config.demo``: bring the demo up, print where to click, stop on Ctrl-C."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from simulators.demo_stack import DemoStack, say

INSTRUCTIONS = """
The hybrid research cloud demo is running on this machine.

  1. Open {login}
     and log in as "{user}" (any name works) with the password "{password}".
  2. Choose the profile "Private EC2 instance" and press Start: the spawn page shows the
     instance launching and booting. JupyterLab opens when the server is ready.
  3. Open welcome.ipynb and press "Sync" in the notebook toolbar: the notebook lands in
     s3://{bucket}/users/{user}/ on SeaweedFS ({s3}).
{publish_step}
  Logs and data: {directory}
Press Ctrl-C to stop everything.
"""

LDAP_NOTE = """  Logins go to a local slapd over LDAPS: "{user}" and "ada" (password "{password}" for both);
  ada is in the LDAP group gpu-users and also sees the profile "Larger EC2 instance".
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_config.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, help="where the demo keeps logs and data (default: a new temporary directory, removed at exit)")
    parser.add_argument("--no-slurm", action="store_true", help="do not start a local Slurm cluster even when Slurm is installed")
    parser.add_argument("--no-openstack", action="store_true", help="do not start the OpenStack fake even when it is present")
    parser.add_argument("--ldap", action="store_true", help="log in against a local slapd over LDAPS (needs the slapd package); ada also sees a gpu-users profile")
    args = parser.parse_args(argv)

    directory = args.dir or Path(tempfile.mkdtemp(prefix="hybrid-demo-"))
    # mkdtemp makes it 0700; Slurm jobs run as the researcher's Unix account and munged insists
    # that every directory above its socket be traversable by all. 0711 lets them pass through
    # without letting other users list what the demo keeps here.
    if args.dir is None:
        os.chmod(directory, 0o711)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    stack = DemoStack(directory.resolve(), with_slurm=not args.no_slurm, with_openstack=not args.no_openstack, with_ldap=args.ldap)
    try:
        stack.start()
        urls = stack.urls
        publish_step = (
            '  4. Press "Publish", confirm, then "Open dashboard" in the notification: the public Voila\n'
            f"     host shows the results without the code. All dashboards: {urls['dashboards']}/\n"
            if urls["dashboards"]
            else "  4. (Publishing needs nginx for the public Voila host: apt-get install nginx.)\n"
        )
        print(INSTRUCTIONS.format(**urls, publish_step=publish_step), flush=True)
        if urls.get("ldap"):
            print(LDAP_NOTE.format(**urls), flush=True)
        while not stop.wait(1):
            pass
        say("stopping…")
    finally:
        stack.stop()
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    say("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
