"""Slurm pieces that need no cluster: squeue parsing, the job script, the status cache's
reading of squeue's answers, request checks, and the closed batchspawner endpoint."""

from __future__ import annotations

import asyncio
import os
import stat
from types import SimpleNamespace

import pytest

from hybrid_spawner.bootstrap.script import render_bootstrap_script
from hybrid_spawner.status import NodeState
from hybrid_spawner.remote import SpawnFailed
from hybrid_spawner.backends.slurm.spawner import SlurmSpawner
from hybrid_spawner.backends.slurm.status import SlurmStatusCache, SqueueFailed, parse_squeue, squeue_argv
from simulators.slurm_users import SLURM_TEST_USER, ensure_unix_user


def test_parse_squeue_maps_states_reasons_and_hosts():
    jobs = parse_squeue(
        "12|RUNNING|None|node7|batch\n"
        "13|PENDING|Resources|n/a|gpu\n"
        "14|COMPLETED|None|node7|batch\n"
        "15|COMPLETING|None|node8|batch\n"
        "garbage line\n"
        "\n"
    )
    assert jobs["12"].state is NodeState.RUNNING and jobs["12"].address == "node7"
    assert jobs["13"].state is NodeState.PENDING and jobs["13"].detail == "PENDING: Resources (partition gpu)"
    assert jobs["13"].address is None
    assert jobs["14"].state is NodeState.GONE
    assert jobs["15"].state is NodeState.GONE  # COMPLETING: the job and its server are ending
    assert set(jobs) == {"12", "13", "14", "15"}


def test_squeue_argv_asks_for_all_jobs_at_once():
    argv = squeue_argv(["squeue"], ["20", "3", "100"])
    assert argv[0] == "squeue" and "--jobs=100,20,3" in argv and "--states=all" in argv and "--noheader" in argv


def fake_squeue(tmp_path, body: str) -> list[str]:
    script = tmp_path / "squeue"
    script.write_text("#!/bin/bash\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [str(script)]


def test_cache_reads_one_answer_for_every_job(tmp_path):
    body = f'echo "$@" >> {tmp_path}/calls; echo "1|RUNNING|None|n1|p"; echo "2|PENDING|Priority|n/a|p"\n'
    cache = SlurmStatusCache(60, fake_squeue(tmp_path, body))
    jobs = cache.fetch_all(frozenset({"1", "2", "3"}))
    assert set(jobs) == {"1", "2"}
    assert (tmp_path / "calls").read_text().count("\n") == 1
    assert cache.calls == 1


def test_cache_failure_is_unknown_and_vanished_ids_are_gone(tmp_path):
    failing = SlurmStatusCache(60, fake_squeue(tmp_path, 'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1\n'))
    with pytest.raises(SqueueFailed):
        failing.fetch_all(frozenset({"1"}))
    (tmp_path / "b").mkdir()
    gone = SlurmStatusCache(60, fake_squeue(tmp_path / "b", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1\n'))
    assert gone.fetch_all(frozenset({"1"})) == {}


async def test_observe_says_unknown_not_gone_when_squeue_fails(tmp_path):
    cache = SlurmStatusCache(60, fake_squeue(tmp_path, "exit 1\n"))
    cache.track("7")
    await cache.refresh_if_stale(0)
    assert cache.observe("7").state is NodeState.UNKNOWN
    assert cache.failures == 1
    await cache.close()


async def test_concurrent_callers_share_one_squeue(tmp_path):
    cache = SlurmStatusCache(60, fake_squeue(tmp_path, f'sleep 0.3; echo x >> {tmp_path}/calls; echo "5|RUNNING|None|n|p"\n'))
    cache.track("5")
    await asyncio.gather(*(cache.refresh_if_stale(10) for _ in range(20)))
    assert (tmp_path / "calls").read_text().count("x") == 1
    assert cache.observe("5").state is NodeState.RUNNING
    await cache.close()


SLURM_CONTEXT = {
    "job_name": "jupyterhub-ada",
    "output": "/home/ada/.jupyterhub-slurm-%j.log",
    "workdir": "/home/ada",
    "partition": "gpu",
    "nprocs": "4",
    "memory": "8G",
    "runtime": "02:00:00",
    "gres": "gpu:a100:1",
    "account": "proj42",
    "qos": "short",
    "reservation": "",
    "extra_directives": ["--constraint=skylake"],
    "prologue": "module load cuda",
    "bind_ip": "",
}


def test_job_script_has_every_directive_before_the_first_command():
    script = render_bootstrap_script(
        "http://hub:8081/hub/api", "cred-'x", template="slurm_job.sh.j2", python="/opt/py/bin/python", extra={"slurm": SLURM_CONTEXT}
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line.strip() and not line.startswith("#"))
    directives = [line for line in lines[:first_command] if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=jupyterhub-ada",
        "#SBATCH --output=/home/ada/.jupyterhub-slurm-%j.log",
        "#SBATCH --chdir=/home/ada",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8G",
        "#SBATCH --time=02:00:00",
        "#SBATCH --gres=gpu:a100:1",
        "#SBATCH --account=proj42",
        "#SBATCH --qos=short",
        "#SBATCH --constraint=skylake",
    ]
    assert not any(line.startswith("#SBATCH") for line in lines[first_command:])
    assert "export HYBRID_BOOTSTRAP_CREDENTIAL='cred-'\"'\"'x'" in script  # shell-quoted
    assert "module load cuda" in script
    assert lines[-1] == "exec /opt/py/bin/python -m hybrid_spawner.node_agent"


@pytest.fixture(scope="module")
def unix_user():
    return ensure_unix_user(SLURM_TEST_USER)


def make_spawner(user: str, **traits) -> SlurmSpawner:
    spawner = SlurmSpawner(user=SimpleNamespace(name=user, url="/user/x/"), **traits)
    return spawner


@pytest.mark.parametrize(
    "trait, value",
    [
        ("req_partition", "debug\n#SBATCH --uid=0"),
        ("req_memory", "4G; rm -rf ~"),
        ("req_account", "$(id)"),
        ("req_gres", "gpu 1"),
    ],
)
async def test_check_options_refuses_values_that_would_escape_the_directive(unix_user, trait, value):
    spawner = make_spawner(unix_user, **{trait: value})
    with pytest.raises(SpawnFailed, match="Invalid Slurm"):
        await spawner.check_options()


async def test_check_options_accepts_slurm_syntax_and_needs_a_unix_account(unix_user):
    await make_spawner(unix_user, req_gres="gpu:a100:2", req_runtime="1-02:00:00", req_memory="4G").check_options()
    with pytest.raises(SpawnFailed, match="no Unix account 'no-such-user-x'"):
        await make_spawner("no-such-user-x").check_options()


def test_batchspawner_setattr_handler_is_replaced_and_shadowed():
    import importlib

    import batchspawner.api
    from jupyterhub import apihandlers, handlers

    from hybrid_spawner.backends.slurm.batchspawner_guard import BATCHSPAWNER_PATH, close_batchspawner_endpoint

    close_batchspawner_endpoint()
    assert not [h for h in apihandlers.default_handlers if h[0] == BATCHSPAWNER_PATH]
    first = [h for h in handlers.default_handlers if h[0] == BATCHSPAWNER_PATH]
    assert len(first) == 1 and first[0][1].__name__ == "BatchspawnerPortOnly"
    # An admin config importing batchspawner again re-adds its handler, but ours comes first
    # in the hub's list (handlers.default_handlers precede apihandlers'), so it still wins.
    importlib.reload(batchspawner.api)
    combined = handlers.default_handlers + apihandlers.default_handlers
    assert next(h for h in combined if h[0] == BATCHSPAWNER_PATH)[1].__name__ == "BatchspawnerPortOnly"
    close_batchspawner_endpoint()


def test_local_cluster_refuses_a_directory_others_cannot_traverse(tmp_path):
    """munged needs every directory above its socket traversable by all (the demo once put it
    under a 0700 temp dir): the cluster says which directory, before starting any daemon."""
    from simulators.slurm import LocalSlurm

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    cluster = LocalSlurm(private / "slurm")
    with pytest.raises(RuntimeError, match=f"{private} is not traversable"):
        cluster.start()
    assert cluster.processes == []
