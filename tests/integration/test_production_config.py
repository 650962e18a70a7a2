"""The production hub configurations, started for real: jupyter_config/production/jupyterhub_config_aws.py
and jupyterhub_config_hybrid.py (each with common_hub.py) on PostgreSQL, behind configurable-http-proxy run as its own process the
way jupyterhub-proxy.service runs it, spawning on the moto server through the node runner.

The hub loads the production file itself (load_subconfig); the test adds only what must differ
on a test machine, listed in OVERRIDES: addresses and ports, the database URL, a login for
tests, and the simulated cloud's ids and endpoint. Every other line is production's, so an
option that stops existing or a value the code no longer accepts fails here.
"""

from __future__ import annotations

import configparser
import os
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from simulators.ec2sim import REGION, aws_client, make_network
from simulators.hub import LocalHub, write_private
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.processes import ManagedProcess, child_env, port_open, venv_bin_dir, wait_until
from tests.fixtures.postgres import PostgresCluster, pg_bin
from voila_publisher.tokens import token_owner

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "jupyter_config" / "production"
PROXY_UNIT = REPO / "jupyter_config" / "systemd" / "jupyterhub-proxy.service"
AMI_PARAMETER = "/research/jupyter-node/ami"  # the production config's, as the image pipeline writes it

OVERRIDES = """
# -- test overrides: only what a test machine must change -------------------------------------
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.hub_connect_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = "{dir}/jupyterhub_cookie_secret"
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "production-test"
c.Authenticator.allow_all = True
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {admin_token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["test-admin"]}})
c.RemoteSpawner.publisher_secret_file = "{dir}/publisher_secret"
# The simulated AWS: moto server's endpoint and region, the network it made, this checkout's venv.
c.EC2Spawner.region = {region!r}
c.EC2Spawner.endpoint_url = {endpoint!r}
c.EC2Spawner.subnet_ids = [{subnet!r}]
c.EC2Spawner.security_group_ids = [{sg!r}]
c.EC2Spawner.instance_profile = ""
c.EC2Spawner.hub_id = {hub_id!r}
c.EC2Spawner.node_python = "{venv}/python"
c.EC2Spawner.cmd = ["{venv}/jupyterhub-singleuser"]
c.EC2Spawner.node_user = ""
c.EC2Spawner.port = 0
c.EC2Spawner.node_address_override = "127.0.0.1"
c.EC2Spawner.status_refresh_interval = 2
c.STSIssuer.region = {region!r}
c.STSIssuer.endpoint_url = {endpoint!r}
c.STSIssuer.sts_endpoint_url = {endpoint!r}
"""


def proxy_argv(port: int, api_port: int, hub_port: int) -> list[str]:
    """The proxy unit's ExecStart with this test's ports (each flag must be in the unit)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(PROXY_UNIT)
    argv = shlex.split(parser["Service"]["ExecStart"])
    wanted = {"--ip": "127.0.0.1", "--port": str(port), "--api-port": str(api_port),
              "--default-target": f"http://127.0.0.1:{hub_port}", "--error-target": f"http://127.0.0.1:{hub_port}/hub/error"}
    seen = set()
    for i, arg in enumerate(argv):
        flag = arg.split("=", 1)[0]
        if flag in wanted:
            argv[i] = f"{flag}={wanted[flag]}"
            seen.add(flag)
    assert seen == set(wanted), f"the proxy unit lacks {set(wanted) - seen}"
    argv[0] = shutil.which("configurable-http-proxy") or argv[0]
    return argv


@pytest.fixture(scope="module", params=["jupyterhub_config_aws.py", "jupyterhub_config_hybrid.py"])
def production_hub(request, moto_server, tmp_path_factory):
    """A hub per deployment shape; the hybrid one spawns its default profile (EC2)."""
    d = tmp_path_factory.mktemp("production-hub")
    database = PostgresCluster().start()
    net = make_network(moto_server.url, ami_parameter=AMI_PARAMETER)
    hub_id = f"prod-test-{secrets.token_hex(4)}"
    runner = NodeRunnerProcess(d / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    hub = LocalHub(d / "hub")
    publisher_secret = secrets.token_urlsafe(32)
    write_private(hub.dir / "publisher_secret", publisher_secret)
    write_private(hub.config_path, (
        "c = get_config()  # noqa\n"
        f"load_subconfig({request.param!r}, path={str(PRODUCTION)!r})  # noqa: F821\n"
        + OVERRIDES.format(port=hub.port, hub_port=hub.hub_port, proxy_api_port=hub.proxy_api_port, db_url=database.url,
                           dir=hub.dir, admin_token=hub.admin_token, region=REGION, endpoint=moto_server.url,
                           subnet=net["subnet"], sg=net["sg"], hub_id=hub_id, venv=venv_bin_dir())
    ))
    proxy_token = secrets.token_hex(32)
    # The proxy's own process, as its unit runs it; hub and proxy share the token via the environment.
    proxy = ManagedProcess("proxy", proxy_argv(hub.port, hub.proxy_api_port, hub.hub_port), log_dir=d,
                           env={**child_env(), "CONFIGPROXY_AUTH_TOKEN": proxy_token},
                           ready=lambda: port_open("127.0.0.1", hub.proxy_api_port), ready_timeout=30)
    hub.extra_env = {**MOTO_CREDENTIALS, "CONFIGPROXY_AUTH_TOKEN": proxy_token}
    started = []
    try:
        for part in (runner, proxy, hub):
            part.start()
            started.append(part)
    except Exception:
        for part in reversed(started):
            part.stop()
        database.stop()
        raise
    world = {"hub": hub, "db": database, "secret": publisher_secret, "ec2": aws_client("ec2", moto_server.url),
             "hub_id": hub_id, "runner": runner, "proxy": proxy}
    yield world
    hub.stop()
    live = world["ec2"].describe_instances(Filters=[{"Name": "tag:jupyterhub/hub-id", "Values": [hub_id]},
                                                    {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    ids = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"]]
    if ids:
        world["ec2"].terminate_instances(InstanceIds=ids)
    runner.stop()
    proxy.stop()
    database.stop()


def drain(hub, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv_bin_dir() / "python"), "-m", "hybrid_spawner.drain", f"--hub-url={hub.url}", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**child_env(), "JUPYTERHUB_API_TOKEN": hub.admin_token})


def test_drain_refuses_without_a_token_or_a_hub(production_hub):
    no_token = subprocess.run([str(venv_bin_dir() / "python"), "-m", "hybrid_spawner.drain"], capture_output=True,
                              text=True, timeout=60, env={k: v for k, v in child_env().items() if k != "JUPYTERHUB_API_TOKEN"})
    assert no_token.returncode == 2 and "JUPYTERHUB_API_TOKEN" in no_token.stderr
    wrong = subprocess.run([str(venv_bin_dir() / "python"), "-m", "hybrid_spawner.drain", "--hub-url=http://127.0.0.1:9"],
                           capture_output=True, text=True, timeout=60, env={**child_env(), "JUPYTERHUB_API_TOKEN": "x"})
    assert wrong.returncode == 2 and "cannot ask the hub" in wrong.stderr


def process_env(pid: int, name: str) -> str | None:
    """``name`` in the environment of ``pid`` or any of its descendants."""
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for entry in Path(f"/proc/{p}/environ").read_bytes().split(b"\0"):
                if entry.startswith(name.encode() + b"="):
                    return entry.split(b"=", 1)[1].decode()
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return None


def test_the_hub_runs_on_postgresql_with_the_culler_and_metrics(production_hub):
    hub, db = production_hub["hub"], production_hub["db"]
    hub.ensure_user("ada")
    assert "ada" in db.query("SELECT name FROM users")  # the hub's state is in PostgreSQL
    assert "alembic_version" in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    status, service = hub.api("GET", "/services/idle-culler", expect=200)
    assert "jupyterhub_idle_culler" in " ".join(service["command"]) and "--max-age=604800" in service["command"]
    wait_until(lambda: "jupyterhub_idle_culler" in hub.log_text() or "idle-culler" in hub.log_text(), 30, "the culler to start")
    # /hub/metrics is for a token with read:metrics (authenticate_prometheus), not for anyone.
    assert requests.get(f"{hub.url}/hub/metrics", timeout=30).status_code == 403
    metrics = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30)
    assert metrics.status_code == 200 and "jupyterhub_total_users" in metrics.text


def test_a_spawn_gets_the_publish_settings_despite_a_replaced_environment(production_hub):
    hub, secret = production_hub["hub"], production_hub["secret"]
    status, body = hub.spawn("grace")
    assert status in (201, 202), body
    if status == 202:  # still starting: a restart now could lose the node, and drain says so
        early = drain(hub, "--timeout=0")
        assert early.returncode in (0, 1), early.stderr
        if early.returncode == 1:
            assert "grace/ (spawn)" in early.stderr
    hub.wait_ready("grace", timeout=120)
    done = drain(hub, "--timeout=30", "--interval=0.5")
    assert done.returncode == 0 and "no spawn or stop in flight" in done.stdout, done.stderr
    instances = production_hub["ec2"].describe_instances(Filters=[
        {"Name": "tag:jupyterhub/hub-id", "Values": [production_hub["hub_id"]]},
        {"Name": "tag:jupyterhub/owner", "Values": ["grace"]}, {"Name": "instance-state-name", "Values": ["running"]}])
    (instance,) = [i for r in instances["Reservations"] for i in r["Instances"]]
    assert instance["InstanceType"] == "m6i.xlarge"  # the production config's first choice
    pid = production_hub["runner"].status()["nodes"][instance["InstanceId"]]["pid"]
    token = process_env(pid, "HYBRID_PUBLISHER_TOKEN")
    assert token and token_owner(secret, token) == "grace"
    assert process_env(pid, "HYBRID_PUBLISHER_URL") == "http://10.0.2.10:8080/api/"
    assert process_env(pid, "HYBRID_S3_REGION") == REGION  # the bucket's region reaches sync
    assert secret not in hub.log_text()
    hub.stop_server("grace")
    wait_until(lambda: production_hub["runner"].status()["nodes"].get(instance["InstanceId"]) is None, 60, "the node to end")


def test_backup_and_upgrade_db_as_operations_md_says(production_hub, tmp_path):
    """pg_dump of the hub's database restores into a fresh one with every user; upgrade-db runs
    on the production config (a no-op on the current schema, it must not fail)."""
    hub, db = production_hub["hub"], production_hub["db"]
    hub.ensure_user("backup-check")
    dump = db.dir / "jupyterhub.dump"
    db._run(pg_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(db.port), "-U", db.role, "-Fc", "-f", str(dump), db.database)
    db._run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(db.port), "-U", db.role, "restored")
    db._run(pg_bin("pg_restore"), "-h", "127.0.0.1", "-p", str(db.port), "-U", db.role, "-d", "restored", str(dump))
    restored = db._run(pg_bin("psql"), "-h", "127.0.0.1", "-p", str(db.port), "-U", db.role, "-d", "restored", "-At",
                       "-c", "SELECT name FROM users").stdout.split()
    assert "backup-check" in restored
    upgrade = subprocess.run([str(venv_bin_dir() / "jupyterhub"), "upgrade-db", f"--config={hub.config_path}"],
                             capture_output=True, text=True, timeout=120, cwd=str(hub.dir),
                             env={**child_env(), **hub.extra_env})
    assert upgrade.returncode == 0, upgrade.stderr[-2000:]
    assert "backup-check" in db.query("SELECT name FROM users")  # nothing lost
