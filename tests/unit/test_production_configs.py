"""The production hub configurations set only options that exist, with values their traits accept.

The integration test (tests/integration/test_production_config.py) starts a real hub with them;
this is the fast check that also covers sections the integration test does not exercise
(OpenStack, Slurm, the login provider).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from traitlets.config.loader import LazyConfigValue, PyFileConfigLoader

from hybrid_spawner.profiles import parse_profiles
from hybrid_spawner.spawner import HybridSpawner
from tests.fixtures.configurables import project_configurables

PRODUCTION = Path(__file__).resolve().parents[2] / "jupyter_config" / "production"
HUB_CONFIGS = ("jupyterhub_config_aws.py", "jupyterhub_config_hybrid.py",
               # The commented examples the README points at: held to the same rule.
               "../jupyterhub_config.py", "../jupyterhub_config_openstack.py")


def load(name: str):
    path = (PRODUCTION / name).resolve()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def known_classes() -> dict[str, type]:
    classes = {cls.__name__: cls for cls in JupyterHub().classes}
    classes.update({cls.__name__: cls for cls in project_configurables()})  # ours win over batchspawner's SlurmSpawner
    return classes


@pytest.mark.parametrize("name", HUB_CONFIGS)
def test_every_option_set_is_a_real_trait_with_an_accepted_value(name):
    config = load(name)
    # No spawner-specific `environment` that would replace c.Spawner.environment (issue 18).
    assert all("environment" not in config[s] for s in ("EC2Spawner", "OpenStackSpawner", "SlurmSpawner") if s in config)
    classes = known_classes()
    unknown_sections = sorted(set(config) - set(classes))
    assert not unknown_sections, f"{name} configures classes the hub does not have: {unknown_sections}"
    for section, values in config.items():
        cls = classes[section]
        unknown = sorted(set(values) - set(cls.class_trait_names(config=True)))
        assert not unknown, f"{name}: c.{section} has no options {unknown}"
        traits = cls.class_traits(config=True)
        probe = cls.__new__(cls)  # a bare instance for trait validation (no __init__ side effects)
        for option, value in values.items():
            if isinstance(value, LazyConfigValue):  # .append / .update on a container default
                value = value.get_value(traits[option].default())
            traits[option]._validate(probe, value)  # raises TraitError for a value of the wrong kind


def test_the_hybrid_profiles_are_valid_for_their_backends():
    config = load("jupyterhub_config_hybrid.py")
    spawner = HybridSpawner(config=config)
    profiles = parse_profiles(spawner.profiles, spawner.backend_classes, spawner._settable_traits)
    assert {p.backend for p in profiles} == {"ec2", "openstack", "slurm"}


def test_both_shapes_share_one_common_part():
    aws, hybrid = load("jupyterhub_config_aws.py"), load("jupyterhub_config_hybrid.py")
    for section in ("ConfigurableHTTPProxy", "GenericOAuthenticator", "RemoteSpawner"):
        assert aws[section] == hybrid[section], section
    hub = {k: v for k, v in aws.JupyterHub.items() if k not in ("spawner_class", "services", "load_roles")}
    assert hub == {k: v for k, v in hybrid.JupyterHub.items() if k in hub}
    assert aws.RemoteSpawner.publisher_secret_file == "/etc/jupyterhub/publisher_secret"
    assert aws.JupyterHub.db_url.startswith("postgresql+psycopg2://")
    assert aws.JupyterHub.cleanup_servers is False
    # Each service once, with its role.
    names = [s["name"] for s in aws.JupyterHub.services.get_value([])]
    assert names.count("idle-culler") == 1
    assert [r["name"] for r in aws.JupyterHub.load_roles.get_value([])].count("idle-culler") == 1


def test_a_wrong_option_name_is_caught(tmp_path):
    # The check can fail: a config naming an option that does not exist.
    (tmp_path / "common_hub.py").write_text((PRODUCTION / "common_hub.py").read_text())
    (tmp_path / "bad.py").write_text(
        (PRODUCTION / "jupyterhub_config_aws.py").read_text() + "\nc.EC2Spawner.instance_typ = 't3.large'\n"
    )
    config = PyFileConfigLoader("bad.py", path=str(tmp_path)).load_config()
    cls = known_classes()["EC2Spawner"]
    assert "instance_typ" in set(config.EC2Spawner) - set(cls.class_trait_names(config=True))


def test_the_public_host_config_names_only_real_options():
    from voila_publisher.host.app import PublisherService

    config = load("voila_publisher_config.py")
    assert set(config) == {"PublisherService"}
    unknown = set(config.PublisherService) - set(PublisherService.class_trait_names(config=True))
    assert not unknown, unknown
    service = PublisherService(config=config)  # values of the right kind, or TraitError here
    assert service.start_voila is False and service.control_token_file  # Voila is its own unit
