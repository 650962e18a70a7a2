"""What a Slurm site has that the tests and benchmarks must make: a Unix account per hub user,
a venv every job user can run, and an ``squeue`` that can be made to fail (a controller that
does not answer)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from simulators.accounts import ensure_account


#: Hub user = Unix user that Slurm jobs run as (created once; kept, so concurrent runs can share it).
SLURM_TEST_USER = "slurmtest"


def ensure_unix_user(name: str) -> str:
    """Create ``name`` with a home directory unless it exists (the tests run as root)."""
    ensure_account(name)
    return name


def assert_venv_usable_by(user: str) -> None:
    """Jobs run the hub's venv as ``user``: fail early and clearly if a parent dir hides it."""
    python = sys.executable
    result = subprocess.run(["sudo", "-u", user, python, "-c", "import hybrid_spawner.node_agent"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{user} cannot run {python} (check that every parent directory is world-executable):\n{result.stderr}"
        )


class SqueueShim:
    """A directory holding an ``squeue`` that logs every call and fails while ``failing`` is set."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.calls_log = self.dir / "calls.log"
        self.flag = self.dir / "fail"
        self.calls_log.touch()
        os.chmod(self.calls_log, 0o666)  # batchspawner runs squeue as the job's user
        real = shutil.which("squeue", path="/usr/bin:/usr/local/bin") or "/usr/bin/squeue"
        script = self.dir / "squeue"
        script.write_text(
            textwrap.dedent(
                f"""\
                #!/bin/bash
                if [ -e {self.flag} ]; then
                  echo "fail $*" >> {self.calls_log}
                  echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2
                  exit 1
                fi
                echo "ok $*" >> {self.calls_log}
                exec {real} "$@"
                """
            )
        )
        os.chmod(script, 0o755)

    def set_failing(self, failing: bool) -> None:
        if failing:
            self.flag.touch()
        else:
            self.flag.unlink(missing_ok=True)

    def calls(self, kind: str | None = None) -> list[str]:
        try:
            lines = self.calls_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines if kind is None or line.startswith(kind + " ")]
