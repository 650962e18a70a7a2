"""The sandbox a published notebook's kernel runs in: what it sees, what it may use.

Pure: :func:`sandbox_command` turns a :class:`SandboxPolicy` and one kernel's paths into the
command line that starts the kernel, so every rule here is unit-tested without starting one.
:mod:`voila_publisher.host.sandbox_kernel` is the kernel manager that uses it.

The layers, outermost first, and why each is there:

``setpriv --pdeathsig KILL``
    the kernel's supervisor dies with Voila (a crashed Voila leaves no kernel running).
``timeout --signal=KILL <wall_clock>``
    a kernel lives at most this long, whatever it does (an abandoned widget page, a sleeper).
``bwrap``
    new user, mount, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``), no
    further user namespaces (``--disable-userns``), a clean environment (``--clearenv``), and a
    file system of: the system's ``/usr`` and the Python environment read-only, a handful of
    files from ``/etc`` read-only, this dashboard version's directory read-only at /dashboard, this kernel's
    own connection directory (its ZeroMQ sockets) writable, and a small private ``/tmp``.
    Nothing else of the host exists inside: not the publisher's secret or store, not the
    logs, not another dashboard, not the other kernels' sockets.
``prlimit``
    address space, CPU seconds, processes and open files: a 10 GB allocation fails with a
    MemoryError, a fork bomb stops at the process limit, a busy loop is killed by the CPU
    limit.

There is no network inside (not even the host's loopback) unless ``network`` is on: the kernel
talks to Voila over Unix sockets in its connection directory (ZeroMQ's ``ipc`` transport).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

#: Where the kernel finds its dashboard version's files (its working directory).
DASHBOARD_MOUNT = "/dashboard"

#: The egress forwarder's place inside the sandbox, and where it listens (the kernel's HTTPS_PROXY).
FORWARDER_MOUNT = "/opt/hybrid/sandbox_forwarder.py"
EGRESS_PROXY_PORT = 3128
EGRESS_PROXY_URL = f"http://127.0.0.1:{EGRESS_PROXY_PORT}"

# What the kernel may read from /etc: name resolution, time zones, the certificate store
# and the users list (Python's getpass and some libraries ask who they are).
ETC_FILES = (
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
    "/etc/localtime", "/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf",
    "/etc/fonts", "/etc/mime.types", "/etc/matplotlibrc",
)

# Environment variables Voila gives a kernel that a dashboard may rely on (the viewer's query
# string, the Voila request data); nothing else of Voila's environment crosses.
PASSED_ENV_PREFIXES = ("VOILA_", "SERVER_", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "JPY_SESSION_NAME")


@dataclass(frozen=True)
class SandboxPolicy:
    """What every dashboard kernel gets. Sizes in bytes, times in seconds."""

    #: Directories visible read-only at the same path (the system's /usr is always there).
    read_only_paths: tuple[str, ...] = ()
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 600
    wall_clock_seconds: int = 3600
    max_processes: int = 64
    max_open_files: int = 256
    max_file_bytes: int = 64 * 1024**2
    tmp_bytes: int = 64 * 1024**2
    network: bool = False
    #: Fixed environment for the kernel (PATH, HOME=/tmp, locale, thread counts ...).
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("memory_bytes", "cpu_seconds", "wall_clock_seconds", "max_processes", "max_open_files", "max_file_bytes", "tmp_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox limit {name} must be positive, got {getattr(self, name)}")
        for path in self.read_only_paths:
            if not os.path.isabs(path):
                raise ValueError(f"sandbox read-only path must be absolute: {path!r}")


def default_kernel_env(python_bin_dir: str) -> dict:
    """The environment a sandboxed kernel starts with; no variable of Voila's or the host's."""
    return {
        "PATH": f"{python_bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        # One thread each: a thread pool per core per kernel multiplies memory and CPU use.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def passed_environment(voila_env: dict) -> dict:
    """The part of the environment Voila prepared for a kernel that crosses into the sandbox."""
    return {k: v for k, v in voila_env.items() if k.startswith(PASSED_ENV_PREFIXES)}


def sandbox_command(
    policy: SandboxPolicy,
    *,
    kernel_command: list[str],
    dashboard_dir: str,
    connection_dir: str,
    extra_env: dict | None = None,
    etc_files: tuple[str, ...] = ETC_FILES,
    egress_socket: str = "",
    forwarder_script: str = "",
) -> list[str]:
    """The full command line starting ``kernel_command`` inside the sandbox.

    ``dashboard_dir`` (the version directory of the notebook being rendered) is visible
    read-only at :data:`DASHBOARD_MOUNT`, the kernel's working directory; ``connection_dir`` (this kernel's own,
    holding its connection file and ZeroMQ sockets) is the only writable host path.

    ``egress_socket`` (in ``connection_dir``): the kernel's way to the listed hosts
    (:mod:`voila_publisher.host.egress`); ``forwarder_script`` offers it inside as
    ``127.0.0.1:3128``, the kernel's ``HTTPS_PROXY``. Still no network namespace of the host.
    """
    for name, path in (("dashboard_dir", dashboard_dir), ("connection_dir", connection_dir)):
        if not os.path.isabs(path):
            raise ValueError(f"{name} must be an absolute path: {path!r}")
    argv = ["setpriv", "--pdeathsig", "KILL", "timeout", "--signal=KILL", str(policy.wall_clock_seconds), "bwrap"]
    argv += ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--clearenv"]
    if policy.network:
        argv += ["--share-net"]
    argv += [
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib",
    ]
    if os.path.isdir("/usr/lib64"):
        argv += ["--symlink", "usr/lib64", "/lib64"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(policy.tmp_bytes), "--tmpfs", "/tmp"]
    argv += ["--size", str(policy.tmp_bytes), "--tmpfs", "/dev/shm"]
    for path in etc_files:
        argv += ["--ro-bind-try", path, path]
    for path in policy.read_only_paths:
        if not _under(path, "/usr"):
            argv += ["--ro-bind", path, path]
    # At a fixed path, so the kernel learns nothing of the host's layout (owners, other slugs).
    argv += ["--ro-bind", dashboard_dir, DASHBOARD_MOUNT]
    argv += ["--bind", connection_dir, connection_dir]
    if egress_socket:
        argv += ["--ro-bind", forwarder_script, FORWARDER_MOUNT]
    # Everything mounted: make / itself read-only, so the kernel can create nothing outside /tmp.
    argv += ["--remount-ro", "/"]
    proxy_env = {"HTTPS_PROXY": EGRESS_PROXY_URL, "https_proxy": EGRESS_PROXY_URL} if egress_socket else {}
    for key, value in sorted({**policy.env, **(extra_env or {}), **proxy_env}.items()):
        argv += ["--setenv", key, value]
    argv += ["--chdir", DASHBOARD_MOUNT, "--"]
    argv += [
        "prlimit",
        f"--as={policy.memory_bytes}",
        f"--cpu={policy.cpu_seconds}",
        f"--nproc={policy.max_processes}",
        f"--nofile={policy.max_open_files}",
        f"--fsize={policy.max_file_bytes}",
        "--core=0",
        "--",
    ]
    if egress_socket:
        argv += [kernel_command[0], FORWARDER_MOUNT, str(EGRESS_PROXY_PORT), egress_socket, "--"]
    argv += kernel_command
    return argv


def describe(argv: list[str]) -> str:
    """The command line as one shell-quoted string, for the log."""
    return " ".join(shlex.quote(a) for a in argv)


def _under(path: str, parent: str) -> bool:
    p, q = Path(path), Path(parent)
    return p == q or q in p.parents
