"""The kernel manager that starts every dashboard kernel inside the sandbox.

Voila is told to use it (``--AsyncMappingKernelManager.kernel_manager_class``, see
:mod:`voila_publisher.host.voila_command`). For each kernel it

* makes a private connection directory (mode 0700) under ``sandbox_runtime_dir`` and moves the
  connection file and the ZeroMQ sockets into it (``ipc`` transport): the kernel has no network,
  so Voila reaches it through Unix sockets in the one host directory the kernel can write;
* refuses to start a kernel anywhere but in one dashboard version's directory, so a kernel never
  sees a whole owner's or the whole host's dashboards;
* wraps the kernel's command in :func:`voila_publisher.host.sandbox.sandbox_command` and hands the
  kernel only the environment the sandbox policy names;
* removes the connection directory when the kernel is gone.

Kernels run as the Unix account Voila runs as, which is not the publisher's (see
docs/publish.md, "Who runs what"): separate accounts per owner would need root or a set-uid
helper on the public host at every kernel start; the namespaces already keep each kernel away
from every other kernel, from Voila and from the files of the host.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from traitlets import Bool, Integer, List, Unicode, default

from voila_publisher.host.egress import EgressProxy, parse_allowed
from voila_publisher.host.sandbox import SandboxPolicy, default_kernel_env, describe, passed_environment, sandbox_command
from voila_publisher.host.store import is_version_dir


FORWARDER_SCRIPT = str(Path(__file__).with_name("sandbox_forwarder.py"))


class KernelOutsideDashboard(RuntimeError):
    """A kernel was asked for in a directory that is not one dashboard version's."""


class SandboxKernelManager(ServerKernelManager):
    sandbox_runtime_dir = Unicode(
        "", config=True,
        help="Directory (private to Voila's account) in which each kernel gets its connection directory. "
        "Default: a 'sandboxes' directory in Jupyter's runtime directory.",
    )
    dashboards_root = Unicode(
        "", config=True,
        help="The dashboards store; kernels start only in one of its version directories. Default: the root "
        "directory of the kernel manager's parent (Voila's).",
    )
    sandbox_memory_bytes = Integer(2 * 1024**3, config=True, help="Address space limit of a dashboard kernel, in bytes (RLIMIT_AS): larger allocations fail with MemoryError.")
    sandbox_cpu_seconds = Integer(600, config=True, help="CPU seconds a dashboard kernel may use over its life (RLIMIT_CPU); a busy loop is killed after this.")
    sandbox_wall_clock_seconds = Integer(3600, config=True, help="Longest life of a dashboard kernel, in seconds, whatever it does.")
    sandbox_max_processes = Integer(64, config=True, help="Processes and threads a dashboard kernel may have (RLIMIT_NPROC inside its own user namespace): stops fork bombs.")
    sandbox_max_open_files = Integer(256, config=True, help="Open files per dashboard kernel process (RLIMIT_NOFILE).")
    sandbox_max_file_bytes = Integer(64 * 1024**2, config=True, help="Largest file a dashboard kernel may write (RLIMIT_FSIZE), in bytes.")
    sandbox_tmp_bytes = Integer(64 * 1024**2, config=True, help="Size of the kernel's private /tmp (and /dev/shm), in bytes.")
    sandbox_network = Bool(
        False, config=True,
        help="Give dashboard kernels the host's network. Off: a kernel reaches no host, not even this machine's "
        "loopback. Turn on only on a public host whose firewall limits what kernels may reach (docs/publish.md).",
    )
    sandbox_allowed_hosts = List(
        Unicode(), config=True,
        help="Hosts dashboard kernels may reach over HTTPS, through a proxy that allows only these "
        "(voila_publisher.host.egress): 'data.example.org', '*.example.org', 'host:8443'. Empty: no network.",
    )
    sandbox_read_only_paths = List(
        Unicode(), config=True,
        help="Directories kernels see read-only at the same path, besides /usr and their dashboard: the Python "
        "environment the kernels run from. Default: this Python's prefix.",
    )

    @default("sandbox_read_only_paths")
    def _python_prefixes(self):
        return sorted({sys.prefix, sys.base_prefix})

    @default("sandbox_runtime_dir")
    def _runtime_default(self):
        from jupyter_core.paths import jupyter_runtime_dir

        return os.path.join(jupyter_runtime_dir(), "sandboxes")

    def sandbox_policy(self) -> SandboxPolicy:
        return SandboxPolicy(
            read_only_paths=tuple(self.sandbox_read_only_paths),
            memory_bytes=self.sandbox_memory_bytes,
            cpu_seconds=self.sandbox_cpu_seconds,
            wall_clock_seconds=self.sandbox_wall_clock_seconds,
            max_processes=self.sandbox_max_processes,
            max_open_files=self.sandbox_max_open_files,
            max_file_bytes=self.sandbox_max_file_bytes,
            tmp_bytes=self.sandbox_tmp_bytes,
            network=self.sandbox_network,
            env=default_kernel_env(os.path.dirname(sys.executable)),
        )

    @property
    def _connection_dir(self) -> str:
        if not getattr(self, "_sandbox_dir", None):
            os.makedirs(self.sandbox_runtime_dir, mode=0o700, exist_ok=True)
            self._sandbox_dir = os.path.join(self.sandbox_runtime_dir, uuid.uuid4().hex)
            os.mkdir(self._sandbox_dir, 0o700)
        return self._sandbox_dir

    async def _async_pre_start_kernel(self, **kw):
        # Before the provisioner writes the connection file: sockets and file go to the
        # kernel's own directory, the only host directory mounted writable in its sandbox.
        directory = self._connection_dir
        self.transport = "ipc"
        self.ip = os.path.join(directory, "zmq")
        self.connection_file = os.path.join(directory, "connection.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        cwd = kw.get("cwd") or os.getcwd()
        root = self.dashboards_root or getattr(self.parent, "root_dir", "") or cwd
        if not is_version_dir(root, cwd):
            raise KernelOutsideDashboard(f"refusing to start a kernel in {cwd}: not a dashboard version directory under {root}")
        dashboard_dir = str(Path(cwd).resolve())
        egress_socket = await self._start_egress_proxy()
        argv = sandbox_command(
            self.sandbox_policy(),
            kernel_command=list(kernel_cmd),
            dashboard_dir=dashboard_dir,
            connection_dir=self._connection_dir,
            extra_env=passed_environment(kw.get("env") or {}),
            egress_socket=egress_socket,
            forwarder_script=FORWARDER_SCRIPT,
        )
        # The launcher itself (setpriv, timeout, bwrap) needs nothing of Voila's environment.
        kw["env"] = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        kw["cwd"] = dashboard_dir
        self.log.debug("starting sandboxed kernel: %s", describe(argv))
        return await super()._async_launch_kernel(argv, **kw)

    async def _start_egress_proxy(self) -> str:
        """The kernel's proxy to the listed hosts (a Unix socket in its directory), or ""."""
        if not self.sandbox_allowed_hosts or self.sandbox_network:
            return ""
        if getattr(self, "_egress", None) is None:
            path = os.path.join(self._connection_dir, "egress.sock")
            self._egress = EgressProxy(parse_allowed(self.sandbox_allowed_hosts), path, self.log)
            await self._egress.start()
        return self._egress.socket_path

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if not restart and getattr(self, "_egress", None) is not None:
            await self._egress.stop()
            self._egress = None
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_sandbox_dir", None):
            shutil.rmtree(self._sandbox_dir, ignore_errors=True)
            self._sandbox_dir = None
