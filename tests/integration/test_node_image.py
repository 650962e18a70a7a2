"""Node images (docs/node-image.md): the wheel installs offline and the agent imports, and the
example recipe's publishing half puts an AMI id where EC2Spawner reads it (real moto server over
HTTP, the real aws CLI)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_spawner.backends.ec2.spawner import EC2Spawner
from simulators.ec2sim import REGION, aws_client, make_network
from simulators.processes import venv_bin_dir

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PUBLISH = ROOT / "jupyter_config" / "node-image" / "publish-ami.sh"


def publish(ami: str, parameter: str, endpoint: str, aws_env: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **aws_env, "AWS_REGION": REGION, "ENDPOINT_URL": endpoint, "SSM_PARAMETER": parameter,
           "PATH": f"{venv_bin_dir()}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(PUBLISH), ami], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def network(moto_server, aws_env):
    return make_network(moto_server.url)


def parameter_value(endpoint: str, name: str) -> str:
    return aws_client("ssm", endpoint).get_parameter(Name=name)["Parameter"]["Value"]


async def test_a_published_ami_is_the_one_the_spawner_resolves(moto_server, aws_env, network):
    endpoint = moto_server.url
    images = aws_client("ec2", endpoint).describe_images()["Images"]
    new_ami = next(i["ImageId"] for i in images if i["ImageId"] != network["ami"])
    parameter = f"/hybrid/test/node-image-{secrets.token_hex(4)}"
    result = publish(new_ami, parameter, endpoint, aws_env)
    assert result.returncode == 0, result.stderr
    assert parameter_value(endpoint, parameter) == new_ami

    spawner = EC2Spawner(region=REGION, endpoint_url=endpoint, image=f"resolve:ssm:{parameter}",
                         subnet_ids=[network["subnet"]], security_group_ids=[network["sg"]],
                         instance_types=["t3.micro"], hub_id="node-image-test")
    await spawner.check_options()
    assert spawner._image_id == new_ami


@pytest.mark.parametrize("ami, code, message", [
    ("ami-xyz", 2, "is not an AMI id"),
    ("ami-0123456789abcdef0", 3, "is not available"),  # well-formed, but no such image
    ("", 2, "is not an AMI id"),
])
def test_a_bad_ami_is_refused_and_the_parameter_keeps_its_value(moto_server, aws_env, network, ami, code, message):
    parameter = f"/hybrid/test/node-image-{secrets.token_hex(4)}"
    assert publish(network["ami"], parameter, moto_server.url, aws_env).returncode == 0
    result = publish(ami, parameter, moto_server.url, aws_env)
    assert result.returncode == code and message in result.stderr, result
    assert parameter_value(moto_server.url, parameter) == network["ami"]


def test_the_wheel_installs_without_an_index_and_the_node_agent_runs(tmp_path):
    """The offline half of docs/node-image.md: build the wheel, install it into a fresh venv with
    --no-index --find-links. --no-deps because a wheelhouse of every dependency is the site's
    (the node agent itself needs only the standard library)."""
    wheelhouse = tmp_path / "wheelhouse"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheelhouse), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheelhouse.glob("jupyter_hybrid_cloud-*-py3-none-any.whl")
    venv = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheelhouse),
                              "--no-deps", "jupyter-hybrid-cloud"], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    # Run from outside the checkout so the import comes from the installed wheel.
    where = subprocess.run([str(python), "-c", "import hybrid_spawner.node_agent as a, inspect; print(inspect.getfile(a))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout
    run = subprocess.run([str(python), "-m", "hybrid_spawner.node_agent"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 2 and "HYBRID_BOOTSTRAP_URL" in run.stderr, run
    # The server extension's config and the Lab extension come with the wheel.
    assert (venv / "etc/jupyter/jupyter_server_config.d/voila_publisher.json").exists()
    assert (venv / "share/jupyter/labextensions/jupyter-hybrid-cloud/package.json").exists()
