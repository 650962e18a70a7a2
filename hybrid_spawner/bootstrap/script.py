"""The node's boot script (user-data, Nova user_data or a Slurm job script) and what the node
receives when it redeems its credential."""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_TEMPLATE = "node_bootstrap.sh.j2"


# -- the node's configuration ----------------------------------------------------------------
def spawner_payload(spawner) -> dict:
    """What a node needs to start the single-user server for ``spawner`` (read at redemption)."""
    return {
        "environment": spawner.get_env(),
        "command": list(spawner.cmd) + list(spawner.get_args()),
        "port": int(spawner.port or 0),
    }


def hub_api_url(spawner) -> str:
    """The hub API URL as nodes reach it (honours ``hub_connect_url``), without trailing slash."""
    return spawner.get_env()["JUPYTERHUB_API_URL"].rstrip("/")


# -- the script ---------------------------------------------------------------------------
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["shquote"] = lambda v: shlex.quote(str(v))


def render_bootstrap_script(
    api_url: str,
    credential: str,
    *,
    template: str = DEFAULT_TEMPLATE,
    python: str = "python3",
    run_as: str = "",
    ttl: float = 0,
    extra: dict | None = None,
) -> str:
    """The node's boot script (user-data, Nova user_data, or a batch job script).

    It carries the hub's bootstrap URL and the credential, nothing else secret. ``template``
    is a file in ``hybrid_spawner/templates`` or an absolute path (an admin's own); ``extra``
    adds template variables (the Slurm backend passes its ``#SBATCH`` lines this way).
    """
    context = {
        "bootstrap_url": api_url.rstrip("/") + "/hybrid/bootstrap",
        "credential": credential,
        "python": python,
        "run_as": run_as,
        "ttl_minutes": max(1, round(ttl / 60)) if ttl else None,
        **(extra or {}),
    }
    if Path(template).is_absolute():
        tmpl = _env.from_string(Path(template).read_text())
    else:
        tmpl = _env.get_template(template)
    return tmpl.render(**context)
