"""How the publisher service starts Voila: its command line and its (scrubbed) environment.

Pure functions, so they are unit-tested without starting anything.
"""

from __future__ import annotations

import sys

SANDBOX_KERNEL_MANAGER = "voila_publisher.host.sandbox_kernel.SandboxKernelManager"

# Environment variables Voila may inherit from the publisher (kernels get less still, see
# voila_publisher.host.sandbox); everything else (the shared secret, whatever the service
# manager set) stays with the publisher service.
KERNEL_ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def voila_argv(
    *,
    dashboards_dir: str,
    ip: str,
    port: int,
    base_url: str,
    execution_timeout: int,
    cull_idle_timeout: int,
    cull_interval: int,
    cull_connected: bool,
    preheat_pool_size: int = 0,
    control_token_file: str = "",
    extra_args: list[str] = (),
    sandbox: dict | None = None,
    prerender_timeout: int = 120,
    max_live_kernels: int = 0,
    python: str = sys.executable,
) -> list[str]:
    """The Voila command line for serving ``dashboards_dir``; pure, so it is unit-tested."""
    preheat = []
    if preheat_pool_size > 0:
        # No pool by default (old versions on disk cost nothing); the publisher names the
        # current versions through the control endpoint (voila_publisher.host.voila_app).
        preheat = [
            "--VoilaConfiguration.preheat_kernel=True",
            "--VoilaConfiguration.default_pool_size=0",
            f"--PublisherVoila.pool_size={preheat_pool_size}",
        ]
    control = []
    if control_token_file:
        # The publisher's private endpoints (pools, static pages) in Voila answer this token only.
        control = [f"--PublisherVoila.control_token_file={control_token_file}", f"--PublisherVoila.prerender_timeout={prerender_timeout}"]
    return [
        python, "-m", "voila_publisher.host.voila_app", "--no-browser",
        f"--Voila.ip={ip}",
        f"--Voila.port={port}",
        f"--Voila.base_url={base_url}",
        "--Voila.open_browser=False",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        # Data files are for the kernel, not for download: Voila serves none of them.
        "--VoilaConfiguration.file_denylist=.*",
        f"--VoilaExecutor.timeout={execution_timeout}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
        f"--MappingKernelManager.cull_connected={cull_connected}",
        # Every kernel in its own sandbox (voila_publisher.host.sandbox_kernel); a kernel the
        # sandbox killed for a limit stays dead instead of being restarted into a loop.
        f"--AsyncMappingKernelManager.kernel_manager_class={SANDBOX_KERNEL_MANAGER}",
        "--SandboxKernelManager.autorestart=False",
        f"--PublisherVoila.max_live_kernels={max_live_kernels}",
        *_cli_options("SandboxKernelManager", sandbox or {}),
        *preheat,
        *control,
        *extra_args,
        dashboards_dir,
    ]


def _cli_options(cls: str, settings: dict) -> list[str]:
    """``--Cls.name=value`` for each setting; a list is given as one option per item (how
    traitlets reads a List from the command line)."""
    options = []
    for name, value in sorted(settings.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        options += [f"--{cls}.{name}={v}" for v in values]
    return options


def kernel_environment(source: dict, extra: dict) -> dict:
    env = {k: v for k, v in source.items() if k in KERNEL_ENV_ALLOWED or k.startswith("LC_")}
    env.update(extra)
    return env
