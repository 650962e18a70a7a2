"""SlurmSpawner site settings: the login environment of the job script, and the batchspawner
traits it refuses instead of ignoring (docs/slurm.md, "Site checklist")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hybrid_spawner.backends.slurm.spawner import SlurmSpawner
from hybrid_spawner.bootstrap.script import render_bootstrap_script
from simulators.slurm_users import SLURM_TEST_USER, ensure_unix_user
from tests.unit.test_slurm import SLURM_CONTEXT


def render(**slurm):
    return render_bootstrap_script("http://hub:8081/hub/api", "cred", template="slurm_job.sh.j2",
                                   python="/opt/py/bin/python", extra={"slurm": {**SLURM_CONTEXT, **slurm}})


@pytest.fixture(scope="module")
def unix_user():
    return ensure_unix_user(SLURM_TEST_USER)


def spawner(user="nobody", **config) -> SlurmSpawner:
    c = Config()
    for name, value in config.items():
        setattr(c.SlurmSpawner, name, value)
    return SlurmSpawner(user=SimpleNamespace(name=user, url=f"/user/{user}/"), config=c)


def test_login_shell_changes_only_the_interpreter_line():
    plain, login = render(), render(login_shell=True)
    assert plain.splitlines()[0] == "#!/bin/bash"
    assert login.splitlines()[0] == "#!/bin/bash -l"
    assert plain.splitlines()[1:] == login.splitlines()[1:]


def test_get_user_env_is_a_directive_before_any_command():
    lines = render(get_user_env=True).splitlines()
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line.strip() and not line.startswith("#"))
    assert "#SBATCH --get-user-env" in lines[:first_command]
    assert "#SBATCH --get-user-env" not in render()


@pytest.mark.parametrize("choice, login_shell, get_user_env", [
    ("none", False, False), ("login-shell", True, False), ("get-user-env", False, True)])
def test_the_trait_reaches_the_script_context(unix_user, choice, login_shell, get_user_env):
    slurm = spawner(unix_user, login_environment=choice).script_context()["slurm"]
    assert (slurm["login_shell"], slurm["get_user_env"]) == (login_shell, get_user_env)


def test_an_unknown_login_environment_is_refused():
    with pytest.raises(TraitError, match="login_environment"):
        spawner(login_environment="bash")


@pytest.mark.parametrize("trait, value, hint", [
    ("req_options", "--constraint=skylake", "extra_directives"),
    ("req_cluster", "gpu-cluster", "one hub per cluster"),
])
def test_unused_batchspawner_traits_are_refused_with_the_alternative(trait, value, hint):
    with pytest.raises(TraitError, match=f"SlurmSpawner.{trait} = '{value}' is not supported: .*{hint}"):
        spawner(**{trait: value})
    # Also when a profile sets it on a running spawner (HybridSpawner overrides), and nothing changes.
    s = spawner()
    with pytest.raises(TraitError, match="not supported"):
        setattr(s, trait, value)
    assert getattr(s, trait) == ""


def test_empty_values_of_the_refused_traits_are_fine():
    assert spawner(req_options="", req_cluster="").req_options == ""
