"""A real single-node Slurm cluster (Debian's munged, slurmctld, slurmd) in a directory of its own.

Used by the tests, the benchmark and the demo. Nothing is shared with a Slurm the machine may
already run: the cluster has its own munge key and socket (``AuthInfo=socket=...``), its own
controller and node ports, its own state, spool, pid and log files, and its own cluster name.
Clients reach it through ``SLURM_CONF`` (see :meth:`LocalSlurm.client_env`).

The directory is world-readable (0755) because jobs run as an unprivileged user who must read
``slurm.conf`` and reach the munge socket; the munge key stays 0600.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from simulators.processes import ManagedProcess, free_port

SLURM_CONF = """\
# Written by simulators.slurm for a throwaway single-node cluster.
ClusterName={cluster}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool/%n
SlurmctldPidFile={dir}/run/slurmctld.pid
SlurmdPidFile={dir}/run/slurmd-%n.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={memory_mb} State=UNKNOWN
{partitions}
"""


class LocalSlurm:
    """Start with :meth:`start` (or as a context manager); :meth:`stop` ends every daemon."""

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        cpus: int = 8,
        memory_mb: int = 8192,
        partitions: tuple[str, ...] = ("debug", "batch"),
        down_partitions: tuple[str, ...] = (),
        ready_timeout: float = 60.0,
    ):
        if directory is None:
            directory = tempfile.mkdtemp(prefix="hybrid-slurm-")
            self._owns_dir = True
        else:
            self._owns_dir = False
        self.dir = Path(directory)
        self.cluster = f"hyb{secrets.token_hex(3)}"
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.partitions = partitions
        self.down_partitions = down_partitions  # jobs sent there stay PENDING (PartitionDown)
        self.ready_timeout = ready_timeout
        self.conf_path = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "run" / "munge.socket"
        self.processes: list[ManagedProcess] = []

    # -- configuration -----------------------------------------------------------------
    def _check_traversable(self) -> None:
        """munged refuses a socket below a directory that others cannot traverse, and jobs run as
        another user; say which directory is at fault instead of leaving it to munged's log."""
        for parent in self.dir.resolve().parents:  # self.dir itself is made 0755 below
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise RuntimeError(
                    f"Slurm cannot run in {self.dir}: {parent} is not traversable by other users "
                    f"(munged and the jobs' Unix accounts must pass through it); chmod o+x {parent} "
                    "or choose another directory"
                )

    def _write_files(self) -> None:
        self._check_traversable()
        for sub in ("", "run", "state", "spool", "log", "munge"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir / sub, 0o755)
        os.chmod(self.dir / "munge", 0o700)
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o600)
        lines = []
        for i, name in enumerate(self.partitions):
            default = "YES" if i == 0 else "NO"
            lines.append(f"PartitionName={name} Nodes=localhost Default={default} MaxTime=INFINITE State=UP")
        for name in self.down_partitions:
            lines.append(f"PartitionName={name} Nodes=localhost Default=NO MaxTime=INFINITE State=DOWN")
        self.conf_path.write_text(
            SLURM_CONF.format(
                cluster=self.cluster,
                ctld_port=self.ctld_port,
                slurmd_port=self.slurmd_port,
                munge_socket=self.munge_socket,
                dir=self.dir,
                cpus=self.cpus,
                memory_mb=self.memory_mb,
                partitions="\n".join(lines),
            )
        )
        os.chmod(self.conf_path, 0o644)

    def client_env(self, base: dict | None = None) -> dict:
        """Environment for sbatch/squeue/scancel/scontrol talking to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf_path)
        return env

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "LocalSlurm":
        # Daemons run in sessions of their own: stop them even if the caller forgets to.
        atexit.register(self.stop)
        self._write_files()
        log_dir = self.dir / "log"
        env = self.client_env()
        try:
            self._start(
                ManagedProcess(
                    "munged",
                    [
                        "/usr/sbin/munged",
                        "--foreground",
                        f"--socket={self.munge_socket}",
                        f"--key-file={self.dir / 'munge' / 'munge.key'}",
                        f"--pid-file={self.dir / 'run' / 'munged.pid'}",
                        f"--seed-file={self.dir / 'munge' / 'munged.seed'}",
                        f"--log-file={log_dir / 'munged.log'}",
                    ],
                    log_dir=log_dir,
                    env=env,
                    ready=lambda: self.munge_socket.exists(),
                    ready_timeout=self.ready_timeout,
                )
            )
            self._start(
                ManagedProcess(
                    "slurmctld",
                    ["/usr/sbin/slurmctld", "-D", "-i", "-f", self.conf_path],
                    log_dir=log_dir,
                    env=env,
                    ready=lambda: self._run(["scontrol", "ping"]).returncode == 0,
                    ready_timeout=self.ready_timeout,
                )
            )
            self._start(
                ManagedProcess(
                    "slurmd",
                    ["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", self.conf_path],
                    log_dir=log_dir,
                    env=env,
                    ready=self._node_idle,
                    ready_timeout=self.ready_timeout,
                )
            )
        except Exception:
            self.stop()
            raise
        return self

    def _start(self, process: ManagedProcess) -> None:
        self.processes.append(process)
        process.start()

    def _run(self, argv: list[str], timeout: float = 15) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.client_env(), capture_output=True, text=True, timeout=timeout)

    def _node_idle(self) -> bool:
        out = self._run(["sinfo", "-h", "-N", "-o", "%T"]).stdout.strip()
        return out.startswith("idle") or out.startswith("mixed") or out.startswith("allocated")

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order)."""
        if any(p.running for p in self.processes):
            with contextlib.suppress(Exception):
                for job in self.job_ids():
                    self._run(["scancel", "--quiet", job])
        for process in reversed(self.processes):
            process.stop(timeout=15)
        self.processes.clear()
        atexit.unregister(self.stop)
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- helpers for tests and the demo -----------------------------------------------------
    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted((self.dir / "log").glob("*.log")))

    def squeue(self, fmt: str = "%i %T %u %j") -> list[str]:
        """Lines of ``squeue -h -o FMT`` for every job (raises if the controller fails)."""
        result = self._run(["squeue", "-h", "-o", fmt])
        result.check_returncode()
        return [line for line in result.stdout.splitlines() if line.strip()]

    def squeue_all(self, fmt: str = "%i %T") -> list[str]:
        """Like :meth:`squeue`, including jobs that ended within MinJobAge."""
        result = self._run(["squeue", "-h", "--states=all", "-o", fmt])
        result.check_returncode()
        return [line for line in result.stdout.splitlines() if line.strip()]

    def job_ids(self) -> list[str]:
        return [line.split()[0] for line in self.squeue("%i")]


def main(argv=None) -> int:
    """``python -m simulators.slurm``: run a private cluster until SIGINT/SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Run a throwaway single-node Slurm cluster.")
    parser.add_argument("--dir", help="directory for its files (default: a new temp dir, removed at exit)")
    parser.add_argument("--cpus", type=int, default=8)
    parser.add_argument("--memory-mb", type=int, default=8192)
    parser.add_argument("--partitions", default="debug,batch", help="comma-separated; the first is the default")
    args = parser.parse_args(argv)
    cluster = LocalSlurm(args.dir, cpus=args.cpus, memory_mb=args.memory_mb, partitions=tuple(args.partitions.split(",")))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    cluster.start()
    try:
        print(f"SLURM_CONF={cluster.conf_path}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
