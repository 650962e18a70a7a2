"""The sandbox's command line (pure) and the rules the kernel manager applies before using it.

What the sandbox actually stops is tested by attacking notebooks on a real host
(tests/integration/test_public_host_sandbox.py); these pin the policy's parts one by one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from voila_publisher.host.sandbox import (
    DASHBOARD_MOUNT,
    SandboxPolicy,
    default_kernel_env,
    passed_environment,
    sandbox_command,
)
from voila_publisher.host.store import is_version_dir
from voila_publisher.host.voila_command import SANDBOX_KERNEL_MANAGER, voila_argv


def _command(policy=None, **kw):
    args = dict(kernel_command=["/venv/bin/python", "-m", "ipykernel_launcher", "-f", "/run/k1/connection.json"],
                dashboard_dir="/srv/dashboards/alice/sales/v000003", connection_dir="/run/k1")
    args.update(kw)
    return sandbox_command(policy or SandboxPolicy(read_only_paths=("/venv",)), **args)


def _pairs(argv, flag):
    return [tuple(argv[i + 1:i + 3]) for i, a in enumerate(argv) if a == flag]


def test_every_namespace_is_new_and_the_environment_is_cleared():
    argv = _command()
    bwrap = argv[argv.index("bwrap"):]
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--clearenv"):
        assert flag in bwrap
    assert "--share-net" not in argv


def test_the_kernel_sees_its_dashboard_read_only_at_a_fixed_path_and_writes_only_its_sockets():
    argv = _command()
    assert ("/srv/dashboards/alice/sales/v000003", DASHBOARD_MOUNT) in _pairs(argv, "--ro-bind")
    assert _pairs(argv, "--bind") == [("/run/k1", "/run/k1")]  # the one writable host path
    assert ("/venv", "/venv") in _pairs(argv, "--ro-bind")
    assert not [p for p in _pairs(argv, "--ro-bind") if p[0].startswith("/srv") and p[0] != "/srv/dashboards/alice/sales/v000003"]
    assert argv[argv.index("--chdir") + 1] == DASHBOARD_MOUNT
    assert argv.index("--remount-ro") > max(i for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--tmpfs"))


def test_limits_are_plain_numbers_prlimit_understands():
    policy = SandboxPolicy(memory_bytes=1536 * 1024**2, cpu_seconds=30, max_processes=16, tmp_bytes=1024**2)
    argv = _command(policy)
    tail = argv[argv.index("prlimit"):]
    assert f"--as={1536 * 1024**2}" in tail and "--cpu=30" in tail and "--nproc=16" in tail and "--core=0" in tail
    assert tail[tail.index("--") + 1:] == ["/venv/bin/python", "-m", "ipykernel_launcher", "-f", "/run/k1/connection.json"]
    assert ("--tmpfs", "/tmp") in [tuple(argv[i + 2:i + 4]) for i, a in enumerate(argv) if a == "--size" and argv[i + 1] == str(1024**2)]
    # The outer layers: die with Voila, and never live longer than the wall clock.
    assert argv[:7] == ["setpriv", "--pdeathsig", "KILL", "timeout", "--signal=KILL", "3600", "bwrap"]


def test_network_only_when_the_admin_allows_it():
    assert "--share-net" in _command(SandboxPolicy(network=True))


def test_only_the_kernels_own_variables_cross():
    env = passed_environment({"QUERY_STRING": "a=1", "VOILA_REQUEST_URL": "u", "AWS_SECRET_ACCESS_KEY": "x",
                              "HYBRID_PUBLISHER_SECRET": "y", "JUPYTERHUB_API_TOKEN": "z", "PATH": "/evil"})
    assert env == {"QUERY_STRING": "a=1", "VOILA_REQUEST_URL": "u"}
    argv = _command(SandboxPolicy(env=default_kernel_env("/venv/bin")), extra_env=env)
    set_vars = dict(_pairs(argv, "--setenv"))
    assert set_vars["HOME"] == "/tmp" and set_vars["PATH"].startswith("/venv/bin:")
    assert set_vars["QUERY_STRING"] == "a=1"
    assert not {"AWS_SECRET_ACCESS_KEY", "HYBRID_PUBLISHER_SECRET", "JUPYTERHUB_API_TOKEN"} & set(set_vars)


@pytest.mark.parametrize("bad", [dict(memory_bytes=0), dict(cpu_seconds=-1), dict(max_processes=0), dict(read_only_paths=("venv",))])
def test_nonsense_policies_are_refused(bad):
    with pytest.raises(ValueError):
        SandboxPolicy(**bad)


def test_relative_paths_are_refused():
    with pytest.raises(ValueError, match="dashboard_dir"):
        _command(dashboard_dir="alice/sales/v000001")


def test_kernels_only_start_in_a_version_directory(tmp_path):
    version = tmp_path / "alice" / "sales" / "v000003"
    version.mkdir(parents=True)
    (tmp_path / "alice" / "sales" / "current").symlink_to("v000003")
    assert is_version_dir(tmp_path, version)
    assert is_version_dir(tmp_path, tmp_path / "alice" / "sales" / "current")  # resolved to the version
    for wrong in (tmp_path, tmp_path / "alice", tmp_path / "alice" / "sales", tmp_path.parent, version / ".." / ".." / ".."):
        assert not is_version_dir(tmp_path, wrong), wrong
    outside = tmp_path.parent / "elsewhere" / "x" / "v000001"
    outside.mkdir(parents=True)
    (tmp_path / "alice" / "sales" / "v000009").symlink_to(outside)
    assert not is_version_dir(tmp_path, tmp_path / "alice" / "sales" / "v000009")  # a link out of the store


def test_voila_uses_the_sandbox_kernel_manager_and_passes_the_limits():
    argv = voila_argv(dashboards_dir="/srv/d", ip="127.0.0.1", port=8866, base_url="/b/", execution_timeout=30,
                      cull_idle_timeout=600, cull_interval=60, cull_connected=False,
                      sandbox={"sandbox_cpu_seconds": 20, "sandbox_network": False})
    assert f"--AsyncMappingKernelManager.kernel_manager_class={SANDBOX_KERNEL_MANAGER}" in argv
    assert "--SandboxKernelManager.autorestart=False" in argv
    assert "--SandboxKernelManager.sandbox_cpu_seconds=20" in argv
    assert "--SandboxKernelManager.sandbox_network=False" in argv


def test_the_service_refuses_to_run_as_root_and_prints_voilas_command(tmp_path):
    config = tmp_path / "c.py"
    config.write_text(f"c.PublisherService.shared_secret = 'x' * 32\nc.PublisherService.dashboards_dir = {str(tmp_path / 'd')!r}\n"
                      "c.PublisherService.kernel_cpu_limit = 42\n")
    printed = subprocess.run([sys.executable, "-m", "voila_publisher.host.app", f"--config={config}", "--print-voila-command"],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert "--SandboxKernelManager.sandbox_cpu_seconds=42" in printed.stdout
    if os.geteuid() == 0:
        refused = subprocess.run([sys.executable, "-m", "voila_publisher.host.app", f"--config={config}"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "refusing to run as root" in refused.stderr


def test_listed_hosts_parse_and_match_exactly():
    from voila_publisher.host.egress import destination_allowed, parse_allowed

    rules = parse_allowed(["data.example.org", "*.tiles.example.org", "10.0.5.7:8443"])
    public = ["93.184.216.34"]
    assert destination_allowed(rules, "data.example.org", 443, public) == ""
    assert destination_allowed(rules, "DATA.example.org.", 443, public) == ""
    assert destination_allowed(rules, "a.tiles.example.org", 443, public) == ""
    assert "not a listed host" in destination_allowed(rules, "tiles.example.org", 443, public)  # *. means subdomains
    assert "not a listed host" in destination_allowed(rules, "data.example.org", 80, public)  # the port is part of the rule
    assert "not a listed host" in destination_allowed(rules, "evil-data.example.org", 443, public)
    # A listed name that resolves to a private, loopback or link-local address is refused (DNS rebinding).
    for private in (["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], ["93.184.216.34", "192.168.1.1"], ["::1"]):
        assert "non-public" in destination_allowed(rules, "data.example.org", 443, private), private
    assert destination_allowed(rules, "10.0.5.7", 8443, ["10.0.5.7"]) == ""  # an address is reached as listed


@pytest.mark.parametrize("bad", ["data.example.org:http", "*", "a/b", "host:70000", ""])
def test_bad_allowed_hosts_are_refused_with_the_entry_named(bad):
    from voila_publisher.host.egress import parse_allowed

    with pytest.raises(ValueError, match="kernel_allowed_hosts"):
        parse_allowed([bad])


def test_egress_goes_through_the_forwarder_and_the_proxy_variable():
    argv = _command(egress_socket="/run/k1/egress.sock", forwarder_script="/srv/venv/lib/sandbox_forwarder.py")
    assert ("/srv/venv/lib/sandbox_forwarder.py", "/opt/hybrid/sandbox_forwarder.py") in _pairs(argv, "--ro-bind")
    assert dict(_pairs(argv, "--setenv"))["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    tail = argv[argv.index("prlimit"):]
    assert tail[tail.index("--") + 1:][:5] == ["/venv/bin/python", "/opt/hybrid/sandbox_forwarder.py", "3128", "/run/k1/egress.sock", "--"]
    assert "--share-net" not in argv  # still no network namespace of the host
