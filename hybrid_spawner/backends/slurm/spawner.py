"""SlurmSpawner: a Jupyter server as a Slurm batch job, started through the shared node bootstrap.

Built on batchspawner's ``SlurmSpawner`` (its ``req_*`` traits, ``exec_prefix``, submit and
cancel commands, Unix user mapping) and on :class:`hybrid_spawner.remote.RemoteSpawner` (the
lifecycle every remote node shares). What changes against plain batchspawner:

* The job script (``templates/slurm_job.sh.j2``) carries no API token: only the hub's bootstrap
  URL and a single-use, expiring credential. The job redeems it at ``/hub/api/hybrid/bootstrap``
  for the server's environment and reports its port to ``/hub/api/hybrid/port``. ``sbatch``
  runs with a minimal environment (no token) and the token never appears on a command line.
* batchspawner's ``/hub/api/batchspawner`` endpoint (which ``setattr``s posted JSON onto the
  spawner) is closed, see :mod:`hybrid_spawner.backends.slurm.batchspawner_guard`.
* Status comes from one shared cache: one ``squeue`` for all jobs per refresh, and a failing
  ``squeue`` means "unknown", not "gone".
* Progress shows the queue state and Slurm's pending reason; cancelling a pending spawn (or
  any failure) cancels the job.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import sys

from batchspawner import SlurmSpawner as BatchSlurmSpawner
from batchspawner.batchspawner import format_template
from traitlets import Dict, Enum, Float, List, TraitError, Unicode, default, validate

from hybrid_spawner.backends.slurm.batchspawner_guard import close_batchspawner_endpoint
from hybrid_spawner.status import NodeState
from hybrid_spawner.remote import RemoteSpawner, SpawnFailed
from hybrid_spawner.backends.slurm.ownership import hub_marker
from hybrid_spawner.backends.slurm.status import SlurmStatusCache

close_batchspawner_endpoint()

# Values that go into #SBATCH lines: no newlines, no shell metacharacters beyond what Slurm
# syntax needs (gres "gpu:a100:2", memory "4G", time "1-02:00:00", accounts "proj_x.y").
SAFE_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9_.:,=+%/@-]*$")
DIRECTIVE_FIELDS = ("partition", "nprocs", "memory", "runtime", "gres", "account", "qos", "reservation")
# Environment variables passed to sbatch (never the hub's secrets or the server's token).
SUBMIT_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "SLURM_CONF", "SLURM_CLUSTERS")
# batchspawner traits this spawner does not use; setting one is refused instead of ignored.
REFUSED_TRAITS = {
    "req_options": "put each option in c.SlurmSpawner.extra_directives (one #SBATCH option per entry, "
                   "e.g. [\"--constraint=skylake\"])",
    "req_cluster": "this spawner submits to and polls one cluster (the hub's SLURM_CONF); run one hub per "
                   "cluster, or point SLURM_CONF at the cluster with c.SlurmSpawner.submit_environment",
}
# How the job script gets the user's login environment (for `module load ...` in req_prologue).
LOGIN_ENVIRONMENTS = ("none", "login-shell", "get-user-env")


class SlurmSubmitError(RuntimeError):
    """sbatch refused the job; the message is Slurm's own words (no secret in it)."""


class SlurmSpawner(RemoteSpawner, BatchSlurmSpawner):
    """Runs the single-user server as a Slurm job (``c.JupyterHub.spawner_class = "hybrid-slurm"``)."""

    backend = "slurm"

    bootstrap_template = Unicode(
        "slurm_job.sh.j2",
        config=True,
        help="""Jinja2 template of the batch script: a file name in hybrid_spawner/templates or
        an absolute path to your own (it may `{% extends "slurm_job.sh.j2" %}`). It receives
        `slurm` (job_name, output, workdir, partition, nprocs, memory, runtime, gres, account,
        qos, reservation, extra_directives, prologue, bind_ip), bootstrap_url, credential and
        python. Keep the #SBATCH lines first and run `python -m hybrid_spawner.node_agent` with
        HYBRID_BOOTSTRAP_URL and HYBRID_BOOTSTRAP_CREDENTIAL exported. batchspawner's req_srun
        and req_epilogue are not used: the agent is the job's only task.""",
    )
    node_python = Unicode(
        config=True,
        help="""Python on the compute nodes that has this package and jupyterhub-singleuser,
        readable by every user (not a per-user pyenv). Default: the hub's own interpreter,
        which suits clusters that share the hub's software tree.""",
    )

    @default("node_python")
    def _node_python_default(self):
        return sys.executable

    start_timeout = Float(
        300,
        config=True,
        help="""Seconds a job may take from submission until its server reports its port,
        including time pending in the queue. After it the job is cancelled and the spawn
        fails. Raise it on busy clusters.""",
    )
    status_refresh_interval = Float(
        15,
        config=True,
        help="""Seconds between two squeue calls of the shared status cache (one call covers
        every job of this hub). Jobs ended outside JupyterHub are noticed within one interval.""",
    )
    startup_poll_interval = Float(
        0.5,
        config=True,
        help="""Seconds between queue checks while a job is pending or starting. Concurrent
        starts share one squeue call.""",
    )
    squeue_command = List(
        Unicode(),
        ["squeue"],
        config=True,
        help="""argv prefix of the status query, run by the hub's own user for all jobs at
        once, e.g. ["squeue"] or ["/opt/slurm/bin/squeue"]. The hub's user must see every
        user's jobs (the default for root and SlurmUser; check PrivateData in slurm.conf).""",
    )
    job_name = Unicode(
        "jupyterhub-{username}",
        config=True,
        help="Slurm job name; {username} and {servername} are replaced.",
    )
    hub_id = Unicode(
        "jupyterhub",
        config=True,
        help="""Identifies this hub's jobs: each job's comment is "jupyterhub-hybrid:<hub_id>"
        (#SBATCH --comment), which the reconciler lists to find jobs no record claims after a
        hub crash (c.Reconciler.backends = [..., "slurm"]). Give every hub submitting to the same
        cluster a distinct value; 1-64 letters, digits, '_', '.' or '-'. A user's own
        extra_directives must not set --comment.""",
    )
    job_output = Unicode(
        "{homedir}/.jupyterhub-slurm-%j.log",
        config=True,
        help="""Path of the job's output file on the compute node ({homedir} and {username}
        are replaced, %j is Slurm's job id). It shows why a job failed to start.""",
    )
    extra_directives = List(
        Unicode(),
        config=True,
        help="""Further #SBATCH options, one per entry without the '#SBATCH ' prefix, e.g.
        ["--constraint=skylake", "--exclusive"].""",
    )
    node_bind_ip = Unicode(
        "",
        config=True,
        help="""Address the server listens on inside the job (HYBRID_NODE_BIND_IP). Empty:
        all interfaces. The hub connects to the job's batch host as squeue reports it.""",
    )
    submit_environment = Dict(
        config=True,
        help="""Extra environment for sbatch/scancel (e.g. {"SLURM_CONF": "/etc/slurm/x.conf"}).
        The hub's PATH, LANG and SLURM_CONF are passed on anyway; its secrets never are.""",
    )

    login_environment = Enum(
        LOGIN_ENVIRONMENTS,
        "none",
        config=True,
        help="""How the job script gets the user's login environment, which `module load ...`
        in req_prologue needs on most clusters (Lmod/Environment Modules are set up by the login
        profile). "none": Slurm's own propagation only (the hub's PATH, LANG, SLURM_CONF).
        "login-shell": the script runs under `bash -l`, so /etc/profile and the user's
        ~/.bash_profile (or ~/.profile) are read on the compute node before the prologue; an
        error in a user's profile then shows in the job's output. "get-user-env": adds
        `#SBATCH --get-user-env`, where slurmd loads the user's login environment; Slurm honours
        it only when sbatch runs as root (an empty exec_prefix and a root hub), so prefer
        "login-shell" with the default `sudo -u {username}` exec_prefix.""",
    )

    @default("power_off_when_server_ends")
    def _jobs_end_with_their_script(self):
        return False  # the job is the script: when the agent ends, so does the job

    @validate("hub_id")
    def _check_hub_id(self, proposal):
        try:
            hub_marker(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("extra_directives")
    def _keep_the_comment(self, proposal):
        for line in proposal["value"]:
            if line.strip().startswith("--comment"):
                raise TraitError("SlurmSpawner.extra_directives may not set --comment: it carries the hub's "
                                 "marker (SlurmSpawner.hub_id) that reconciliation finds its jobs by")
        return proposal["value"]

    @validate(*REFUSED_TRAITS)
    def _refuse_unused_batchspawner_traits(self, proposal):
        value = proposal["value"]
        if value:
            name = proposal["trait"].name
            raise TraitError(f"SlurmSpawner.{name} = {value!r} is not supported: {REFUSED_TRAITS[name]}.")
        return value

    @default("req_keepvars")
    def _req_keepvars_default(self):
        # batchspawner lists the server's environment here for `--export`; our jobs get that
        # environment from the bootstrap instead, so sbatch needs none of it.
        return ""

    # ------------------------------------------------------------------ helpers
    def _subvars(self) -> dict:
        subvars = self.get_req_subvars()
        subvars.setdefault("username", self.user.name)
        return subvars

    def _command(self, template: str, **values) -> list[str]:
        """Split first, then format each word: a value can never add shell syntax."""
        subvars = {**self._subvars(), **values}
        prefix = [format_template(w, **subvars) for w in shlex.split(self.exec_prefix)]
        return prefix + [format_template(w, **subvars) for w in shlex.split(template)]

    def _slurm_env(self) -> dict:
        env = {k: os.environ[k] for k in SUBMIT_ENV_KEEP if k in os.environ}
        env.update(self.submit_environment)
        return env

    async def _run(self, argv: list[str], stdin: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._slurm_env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SlurmSubmitError(f"{argv[0]} did not answer within {timeout:.0f}s") from None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    # ------------------------------------------------------------------ RemoteSpawner contract
    async def check_options(self) -> None:
        try:
            pwd.getpwnam(self.user.name)
        except KeyError:
            raise SpawnFailed(
                f"There is no Unix account '{self.user.name}' on the hub host; Slurm jobs run as "
                "the hub user's Unix account. Ask your administrator to create it.",
                status=400,
            ) from None
        if self.req_epilogue:
            self.log.warning("%s: SlurmSpawner.req_epilogue is not used (the node agent ends the job)", self._log_name)
        subvars = self._subvars()
        for name in DIRECTIVE_FIELDS:
            value = str(subvars.get(name) or "")
            if not SAFE_DIRECTIVE_VALUE.match(value):
                raise SpawnFailed(f"Invalid Slurm {name} {value!r}: only letters, digits and _.:,=+%/@- are allowed.", status=400)

    def _names(self) -> dict:
        return {"username": self.user.name, "servername": self.name or "", "homedir": self._subvars().get("homedir", "")}

    def _output_path(self, job_id: str) -> str:
        return self.job_output.format(**self._names()).replace("%j", job_id)

    def default_home_kind(self) -> str:
        return "shared"  # the cluster's home filesystem (docs/slurm.md, site checklist)

    def script_context(self) -> dict:
        subvars = self._subvars()
        names = self._names()
        return {
            "slurm": {
                "job_name": self.job_name.format(**names),
                "comment": hub_marker(self.hub_id),
                "output": self.job_output.format(**names),
                "workdir": subvars.get("homedir") or "/tmp",
                **{name: str(subvars.get(name) or "") for name in DIRECTIVE_FIELDS},
                "extra_directives": list(self.extra_directives),
                "prologue": self.req_prologue,
                "bind_ip": self.node_bind_ip,
                "login_shell": self.login_environment == "login-shell",
                "get_user_env": self.login_environment == "get-user-env",
            }
        }

    async def launch_node(self, script: str) -> str:
        argv = self._command(self.batch_submit_cmd)
        self.log.info("%s: submitting Slurm job: %s", self._log_name, shlex.join(argv))
        code, out, err = await self._run(argv, stdin=script)
        if code != 0:
            raise SlurmSubmitError(err.strip() or f"sbatch exited with {code}")
        job_id = self.parse_job_id(out.strip())
        self.job_id = job_id
        return job_id

    async def wait_for_address(self, job_id: str) -> str:
        cache = self.status_cache()
        last = None
        while True:
            await cache.refresh_if_stale(self.startup_poll_interval / 2)
            seen = cache.observe(job_id)
            if seen.state is NodeState.RUNNING and seen.address:
                return seen.address
            if seen.state is NodeState.GONE:
                raise SpawnFailed(
                    f"Slurm job {job_id} ended before the server started ({seen.detail}); "
                    f"its output is in {self._output_path(job_id)} on the cluster."
                )
            if seen.state is NodeState.PENDING:
                message = f"Slurm job {job_id} is queued: {seen.detail}"
            else:
                message = f"Slurm job {job_id}: queue status unknown ({seen.detail}); still waiting"
            if message != last:
                self.emit(35, message)
                last = message
            await asyncio.sleep(self.startup_poll_interval)

    async def terminate_node(self, job_id: str) -> None:
        code, _, err = await self._run(self._command(self.batch_cancel_cmd, job_id=job_id))
        if code != 0 and "Invalid job id" not in err and "already completing or completed" not in err:
            raise SlurmSubmitError(f"scancel {job_id} failed: {err.strip()[:300]}")

    def list_owned_nodes(self) -> dict:
        """The jobs carrying this hub's marker (one squeue over the queue); their owners are
        kept for :meth:`terminate_orphan`, which runs without a hub user."""
        owned = self.status_cache().list_owned(self.hub_id)
        self._orphan_owners = {job.job_id: job.owner for job in owned.values()}
        return {job.job_id: job.observation for job in owned.values()}

    async def terminate_orphan(self, job_id: str) -> None:
        """scancel as the job's owner (exec_prefix's {username}), as seen by the last listing."""
        owner = getattr(self, "_orphan_owners", {}).get(job_id)
        if not owner:
            raise SlurmSubmitError(f"job {job_id} was not in the last listing of this hub's jobs")
        values = {"username": owner, "job_id": job_id}
        argv = [format_template(w, **values) for w in shlex.split(self.exec_prefix)]
        argv += [format_template(w, **values) for w in shlex.split(self.batch_cancel_cmd)]
        code, _, err = await self._run(argv)
        if code != 0 and "Invalid job id" not in err and "already completing or completed" not in err:
            raise SlurmSubmitError(f"scancel {job_id} failed: {err.strip()[:300]}")

    def status_cache(self) -> SlurmStatusCache:
        env = {**os.environ, **self._slurm_env()}
        key = (tuple(self.squeue_command), env.get("SLURM_CONF"), env.get("SLURM_CLUSTERS"))
        cache = SlurmStatusCache.shared(key, self.status_refresh_interval, self.squeue_command, env)
        cache.env = env
        return cache

    def describe_error(self, error: BaseException) -> str | None:
        if isinstance(error, SlurmSubmitError):
            return f"Slurm did not accept the job: {error}"
        return None

    def describe_node(self) -> str:
        return f"Slurm job {self.node_id}"

    def backend_state(self) -> dict:
        return {"job_id": self.node_id}

    def load_backend_state(self, state: dict) -> None:
        self.job_id = state.get("job_id") or self.node_id or ""

    def clear_backend_state(self) -> None:
        self.job_id = ""
