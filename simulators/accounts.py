"""Unix accounts the simulations need (researchers, the public host's service accounts).

One way to create them, safe when several processes ask at once (parallel test workers, a
demo hub creating a researcher while a fixture creates another): ``useradd`` holds a lock on
/etc/passwd and refuses a second writer ("cannot lock /etc/passwd; try again later."), so a
refusal for the lock is tried again, and "already exists" (another process won) is success.
"""

from __future__ import annotations

import pwd
import subprocess
import time

LOCKED = 10  # useradd's exit status when /etc/passwd or /etc/group is locked by another writer


def ensure_account(name: str, *, system: bool = False, attempts: int = 40) -> pwd.struct_passwd:
    """The account ``name``, created if missing: a login account with a home directory, or with
    ``system`` a service account without login or home, as a package would create it."""
    if system:
        argv = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    else:
        argv = ["useradd", "--create-home", "--shell", "/bin/bash", name]
    for attempt in range(attempts):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode == 0 or "already exists" in result.stderr:
            continue  # read it back on the next turn
        if result.returncode == LOCKED or "lock" in result.stderr:
            time.sleep(0.05 * (attempt + 1))
            continue
        raise RuntimeError(f"useradd {name} failed: {result.stderr.strip()}")
    raise RuntimeError(f"useradd {name}: /etc/passwd stayed locked")
