"""Write docs/reference.md: every option of the project's Configurable classes, from its help= text.

    .venv/bin/python scripts/options_reference.py

Run it after adding or changing an option; tests/unit/test_options_documented.py fails while an
option is named nowhere in docs/. The topic pages explain how options work together; this page
is the complete list.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.configurables import own_options, project_configurables  # noqa: E402

INTRO = """# Reference: every option

Generated from the options' own help texts by `scripts/options_reference.py` (run it after
adding or changing an option). Set an option as `c.Class.option = value` in the file the
component reads: the hub's `jupyterhub_config.py` (spawners, bucket credential issuers), the
single-user server's `jupyter_server_config.py` (`BucketSync`, `DashboardPublisher`), the public
host's `voila-publisher --config` file (`PublisherService`). Options of a base class apply to
every subclass (`c.RemoteSpawner.start_timeout` for all backends, `c.EC2Spawner.start_timeout`
for one). The topic pages ([ec2.md](ec2.md), [openstack.md](openstack.md), [slurm.md](slurm.md),
[profiles.md](profiles.md), [sync.md](sync.md), [publish.md](publish.md),
[security.md](security.md), [deployment.md](deployment.md)) explain how they work together.
"""

WHERE = {
    "hybrid_spawner": "the hub's jupyterhub_config.py",
    "voila_publisher.host.app": "the public host: voila-publisher --config",
    "voila_publisher.host.voila_app": "set by voila-publisher on Voila's command line (--print-voila-command); not by hand",
    "voila_publisher.host.sandbox_kernel": "set by voila-publisher on Voila's command line from the PublisherService kernel_* options; not by hand",
    "voila_publisher.sync.cli": "the `jupyter hybrid-sync` command line (--flags)",
    "voila_publisher": "the single-user server's jupyter_server_config.py (defaults from the HYBRID_* environment)",
}


def where(cls: type) -> str:
    module = cls.__module__
    return next(text for prefix, text in WHERE.items() if module == prefix or module.startswith(prefix + "."))


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", inspect.cleandoc(text or "")).strip()


def render() -> str:
    parts = [INTRO]
    for cls in project_configurables():
        options = own_options(cls)
        if not options:
            continue
        bases = [b.__name__ for b in cls.__mro__[1:] if b in project_configurables()]
        source = Path(inspect.getsourcefile(cls)).relative_to(REPO)
        parts.append(f"\n## {cls.__name__}\n\n`{source}`; {where(cls)}."
                     + (f" Also takes the options of {', '.join(bases)}." if bases else "") + "\n")
        for name in sorted(options):
            trait = options[name]
            try:
                default = trait.default_value_repr()
            except AssertionError:  # a Type/Instance trait whose default is None
                default = "None"
            if len(default) > 60:
                default = default[:57] + "..."
            parts.append(f"- `{cls.__name__}.{name}` ({type(trait).__name__}, default `{default}`): "
                         f"{one_line(trait.help) or 'no help text'}")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    target = REPO / "docs" / "reference.md"
    target.write_text(render())
    print(f"wrote {target}")
