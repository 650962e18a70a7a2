"""Pure parts of the OpenStack backend: status reading, settings, error wording, node runner."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from keystoneauth1 import exceptions as ks
from openstack import exceptions as osx

from hybrid_spawner.backends.openstack.plan import private_ip
from simulators.noderunner_openstack import decode_user_data, with_bind_address
from hybrid_spawner.backends.openstack.connection import ConnectionSettings, describe_sdk_error, is_transient
from hybrid_spawner.backends.openstack.status import observe_server
from hybrid_spawner.status import NodeState

PRIVATE = {"research-private": [{"version": 4, "addr": "10.1.0.7", "OS-EXT-IPS:type": "fixed"}]}


def server(status, task_state=None, fault=None, addresses=None):
    return SimpleNamespace(status=status, task_state=task_state, fault=fault, addresses=addresses)


def test_observe_server_states_and_details():
    running = observe_server(server("ACTIVE", addresses=PRIVATE))
    assert running.state is NodeState.RUNNING and running.address == "10.1.0.7" and running.detail == "ACTIVE"
    failed = observe_server(server("ERROR", fault={"message": "No valid host was found. "}))
    assert failed.state is NodeState.GONE and failed.detail == "ERROR: No valid host was found."
    deleting = observe_server(server("ACTIVE", "deleting"))
    assert deleting.state is NodeState.GONE and deleting.detail == "ACTIVE (deleting)"
    assert observe_server(server("BUILD", "spawning")).state is NodeState.PENDING
    assert observe_server(server("SHUTOFF")).state is NodeState.GONE


SECRET = "s3cr3t-value"


def test_settings_never_show_secrets():
    by_auth = ConnectionSettings.build(auth={"auth_url": "https://keystone.example/v3", "username": "hub",
                                             "password": SECRET})
    assert SECRET not in by_auth.describe() and SECRET not in by_auth.cache_key()
    assert by_auth.describe() == "Keystone at https://keystone.example/v3"
    assert by_auth.effective_auth_type() == "password"
    app = ConnectionSettings.build(auth={"auth_url": "u", "application_credential_id": "i",
                                         "application_credential_secret": SECRET})
    assert app.effective_auth_type() == "v3applicationcredential"
    assert ConnectionSettings.build(cloud="research").describe() == "cloud 'research'"


@pytest.mark.parametrize("settings, words", [
    (ConnectionSettings.build(), "needs either `cloud`"),
    (ConnectionSettings.build(auth={"username": "hub"}), "must contain auth_url"),
])
def test_incomplete_settings_are_refused(settings, words):
    with pytest.raises(ValueError, match=words):
        settings.validate()


def http_error(status, message):
    return osx.HttpException(message=message, details=message, http_status=status)


@pytest.mark.parametrize("error, words", [
    (osx.ConfigException("Cloud research was not found."), "cloud 'research' is not defined in"),
    (ks.Unauthorized(), "refused the hub's credentials for cloud 'research' (HTTP 401)"),
    (ks.ConnectFailure("boom"), "cannot reach OpenStack (cloud 'research')"),
    (http_error(403, "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores"),
     "quota is exhausted (Quota exceeded for cores"),
    (http_error(400, "Invalid key_name provided."), "refused the request (HTTP 400): Invalid key_name provided."),
    (http_error(503, "Service Unavailable"), "HTTP 503: Service Unavailable. Try again later."),
])
def test_sdk_errors_get_clear_sentences(error, words):
    assert words in describe_sdk_error(error, ConnectionSettings.build(cloud="research"))


def test_transient_errors():
    assert is_transient(http_error(503, "x")) and is_transient(ks.ConnectFailure("x"))
    assert not is_transient(http_error(403, "x")) and not is_transient(RuntimeError("x"))


def test_unexpected_errors_are_not_described():
    assert describe_sdk_error(RuntimeError("x"), ConnectionSettings.build(cloud="c")) is None


def test_node_runner_helpers():
    assert private_ip(PRIVATE) == "10.1.0.7"
    assert private_ip({"n": [{"version": 6, "addr": "fd00::1"}]}) is None
    assert decode_user_data(base64.b64encode(b"#!/bin/sh\n").decode()) == "#!/bin/sh\n"
    assert decode_user_data("not base64!") is None and decode_user_data(None) is None


def test_nodes_are_told_their_servers_fixed_ip():
    script = "#!/bin/bash\nset -e\nexec python3 -m hybrid_spawner.node_agent\n"
    assert with_bind_address(script, "127.42.0.11") == (
        "#!/bin/bash\nexport HYBRID_NODE_BIND_IP=127.42.0.11\nset -e\nexec python3 -m hybrid_spawner.node_agent\n")
    assert with_bind_address("echo hi\n", "10.0.0.5") == "export HYBRID_NODE_BIND_IP=10.0.0.5\necho hi\n"


def test_example_hub_config_uses_only_real_options():
    from pathlib import Path

    from traitlets.config.loader import PyFileConfigLoader

    from hybrid_spawner.backends.openstack.spawner import OpenStackSpawner

    path = Path(__file__).resolve().parents[2] / "jupyter_config" / "jupyterhub_config_openstack.py"
    config = PyFileConfigLoader(path.name, str(path.parent)).load_config()
    options = set(config.OpenStackSpawner)
    assert {"cloud", "image", "flavor", "networks", "hub_id"} <= options
    assert options <= set(OpenStackSpawner.class_trait_names(config=True))
    assert config.JupyterHub.spawner_class == "hybrid-openstack" and config.JupyterHub.cleanup_servers is False


def test_short_name_hybrid_openstack_loads_the_spawner():
    from importlib.metadata import entry_points

    from hybrid_spawner.backends.openstack.spawner import OpenStackSpawner

    [entry] = [e for e in entry_points(group="jupyterhub.spawners") if e.name == "hybrid-openstack"]
    assert entry.load() is OpenStackSpawner
