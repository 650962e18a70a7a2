"""The example single-user server config only sets options that exist (so it cannot rot)."""

from pathlib import Path

from traitlets.config import Config

from voila_publisher.publish.client import DashboardPublisher
from voila_publisher.sync.config import BucketSync

EXAMPLE = Path(__file__).resolve().parents[2] / "jupyter_config" / "jupyter_server_config.py"


def load_example() -> Config:
    config = Config()
    exec(compile(EXAMPLE.read_text(), str(EXAMPLE), "exec"), {"get_config": lambda: config})
    return config


def test_example_server_config_names_only_real_options():
    config = load_example()
    for cls in (BucketSync, DashboardPublisher):
        section = config[cls.__name__]
        assert section, f"the example configures nothing for {cls.__name__}"
        known = set(cls.class_trait_names(config=True))
        unknown = set(section) - known
        assert not unknown, f"{cls.__name__} has no options {sorted(unknown)}"
        # And the values are accepted by the traits (a wrong type raises here).
        cls(config=config)
    assert config.ServerApp.jpserver_extensions == {"voila_publisher": True}
