"""The systemd units, accounts and directories of jupyter_config/systemd/, checked with systemd's own tools,
and Voila started the way its unit starts it (voila-publisher --exec-voila, as the `voila` account).

systemd does not run on the test machine, so the units are checked with `systemd-analyze verify`
(syntax, every option known, the command executable) on copies whose install paths point at
this checkout's venv; the accounts with `systemd-sysusers --root` and the directories with
`systemd-tmpfiles --root`, both in a scratch root.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from simulators.processes import ManagedProcess, as_user, child_env, free_port, port_open, venv_bin_dir
from simulators.voila_host import VOILA_USER, ensure_service_account

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "jupyter_config" / "systemd"
SERVICES = ("jupyterhub.service", "jupyterhub-proxy.service", "voila-publisher.service", "voila-dashboards.service")
#: Where the units expect the installs, and where they are in this checkout.
INSTALL_PATHS = {"/opt/jupyterhub/bin/": f"{venv_bin_dir()}/", "/opt/voila-host/bin/": f"{venv_bin_dir()}/"}


def systemd_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install Debian's systemd package")
    return found


def unit_for_this_machine(text: str) -> str:
    for production, here in INSTALL_PATHS.items():
        text = text.replace(production, here)
    chp = shutil.which("configurable-http-proxy") or "/usr/bin/configurable-http-proxy"
    return text.replace("/usr/bin/configurable-http-proxy", chp)


def service_section(path: Path, *dropins: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read([path, *dropins])
    return dict(parser["Service"])


def verify(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([systemd_tool("systemd-analyze"), "verify", *map(str, paths)], capture_output=True, text=True)


def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    copies = []
    for name in SERVICES:
        copy = tmp_path / name
        copy.write_text(unit_for_this_machine((UNITS / name).read_text()))
        copies.append(copy)
    # The hub with the Slurm drop-in, merged as systemd would (later lines win).
    slurm = tmp_path / "jupyterhub-slurm.service"
    slurm.write_text(copies[0].read_text() + "\n" + (UNITS / "jupyterhub.service.d" / "slurm.conf").read_text())
    result = verify(copies + [slurm])
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    broken = tmp_path / "broken.service"
    broken.write_text(unit_for_this_machine((UNITS / "jupyterhub.service").read_text()).replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    assert verify([broken]).stderr.strip()


@pytest.mark.parametrize("name", SERVICES)
def test_no_service_runs_as_root_and_each_is_hardened(name):
    service = service_section(UNITS / name)
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "", "root"), name
    for option, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                          "PrivateTmp": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes"}.items():
        assert service.get(option) == value, f"{name}: {option}={service.get(option)!r}, want {value!r}"


def test_only_the_slurm_hub_may_gain_privileges_and_only_for_sudo():
    service = service_section(UNITS / "jupyterhub.service", UNITS / "jupyterhub.service.d" / "slurm.conf")
    assert service["NoNewPrivileges"] == "no" and service["User"] == "jupyterhub"
    assert "CAP_SYS_ADMIN" not in service["CapabilityBoundingSet"]


def test_units_name_the_ports_of_the_production_configs():
    proxy = service_section(UNITS / "jupyterhub-proxy.service")["ExecStart"]
    common = (REPO / "jupyter_config" / "production" / "common_hub.py").read_text()
    assert "--api-port=8001" in proxy and 'api_url = "http://127.0.0.1:8001"' in common
    assert "--port=8000" in proxy and 'bind_url = "http://:8000"' in common
    assert "--default-target=http://127.0.0.1:8081" in proxy and 'hub_bind_url = "http://0.0.0.0:8081"' in common


def test_accounts_and_directories_are_created_by_systemd_tools(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    wanted = ("jupyterhub", "publisher", "voila")
    for name in ("passwd", "group"):  # the system's accounts without ours: sysusers must make them
        lines = Path(f"/etc/{name}").read_text().splitlines()
        (root / "etc" / name).write_text("".join(l + "\n" for l in lines if l.split(":")[0] not in wanted))
    result = subprocess.run([systemd_tool("systemd-sysusers"), f"--root={root}", str(UNITS / "jupyter-hybrid.sysusers.conf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    made = {l.split(":")[0]: l.split(":") for l in (root / "etc" / "passwd").read_text().splitlines()}
    for name in wanted:
        assert name in made and made[name][6] == "/usr/sbin/nologin" and int(made[name][2]) < 1000, made.get(name)
    result = subprocess.run([systemd_tool("systemd-tmpfiles"), f"--root={root}", "--create", str(UNITS / "voila-publisher.tmpfiles.conf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    store = root / "var/lib/voila-publisher/dashboards"
    assert oct(store.stat().st_mode & 0o7777) == "0o2750"


@pytest.mark.skipif(os.geteuid() != 0, reason="runs Voila as the voila account (needs root to switch)")
def test_voila_starts_from_the_publisher_config_as_its_own_account(tmp_path):
    """voila-dashboards.service's ExecStart: the publisher's config file, --exec-voila, the voila account."""
    ensure_service_account(VOILA_USER)
    base = Path("/tmp") / f"voila-unit-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    os.chmod(base, 0o755)  # whatever the umask: the voila account reads the config in it
    try:
        dashboards, home = base / "dashboards", base / "home"
        for d in (dashboards, home):
            d.mkdir()
            shutil.chown(d, VOILA_USER, VOILA_USER)
        token = base / "control_token"
        token.write_text("t" * 43)
        shutil.chown(token, None, VOILA_USER)
        os.chmod(token, 0o640)
        port = free_port()
        config = base / "config.py"
        config.write_text(
            (REPO / "jupyter_config" / "production" / "voila_publisher_config.py").read_text()
            + f"\n# test overrides: paths and ports\nc.PublisherService.dashboards_dir = {str(dashboards)!r}\n"
            f"c.PublisherService.static_dir = {str(base / 'static')!r}\n"
            f"c.PublisherService.control_token_file = {str(token)!r}\nc.PublisherService.voila_port = {port}\n"
        )
        os.chmod(config, 0o644)
        argv = as_user(VOILA_USER, [venv_bin_dir() / "voila-publisher", f"--config={config}", "--exec-voila"])
        voila = ManagedProcess("voila-exec", argv, log_dir=tmp_path, env={**child_env(), "HOME": str(home)}, cwd=str(base),
                               ready=lambda: port_open("127.0.0.1", port), ready_timeout=90)
        voila.start()
        try:
            cmdline = Path(f"/proc/{voila.proc.pid}/cmdline").read_bytes().split(b"\0")
            assert b"voila" in b" ".join(cmdline) and b"--exec-voila" not in cmdline  # became Voila
            assert Path(f"/proc/{voila.proc.pid}").stat().st_uid == __import__("pwd").getpwnam(VOILA_USER).pw_uid
        finally:
            voila.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_exec_voila_without_a_shared_token_file_is_refused(tmp_path):
    config = tmp_path / "config.py"
    config.write_text(f"c = get_config()\nc.PublisherService.dashboards_dir = {str(tmp_path)!r}\nc.PublisherService.allow_root = True\n")
    result = subprocess.run([venv_bin_dir() / "voila-publisher", f"--config={config}", "--exec-voila"],
                            capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 2 and "control_token_file" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to the voila account (needs root)")
def test_the_kernel_sandbox_works_under_the_voila_units_restrictions(tmp_path):
    """voila-dashboards.service sets NoNewPrivileges and drops every capability: the sandbox a
    kernel starts in (bubblewrap from unprivileged user namespaces) must still work there."""
    from voila_publisher.host.sandbox import SandboxPolicy, default_kernel_env, sandbox_command

    ensure_service_account(VOILA_USER)
    base = Path("/tmp") / f"voila-nnp-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    try:
        dashboard, connection = base / "dashboard", base / "connection"
        for d in (base, dashboard, connection):
            d.mkdir()
            os.chmod(d, 0o755)
            shutil.chown(d, VOILA_USER, VOILA_USER)
        python = str(venv_bin_dir() / "python")
        policy = SandboxPolicy(read_only_paths=(str(Path(python).resolve().parents[1]), str(venv_bin_dir().parent)),
                               env=default_kernel_env(str(venv_bin_dir())))
        argv = sandbox_command(policy, kernel_command=[python, "-c", "import os; print('in-sandbox', os.getuid())"],
                               dashboard_dir=str(dashboard), connection_dir=str(connection))
        unit_like = ["setpriv", f"--reuid={VOILA_USER}", f"--regid={VOILA_USER}", "--init-groups", "--no-new-privs",
                     "--inh-caps=-all", "--bounding-set=-all", "--", *argv]
        result = subprocess.run(unit_like, capture_output=True, text=True, timeout=60, cwd=str(base))
        assert result.returncode == 0 and "in-sandbox" in result.stdout, result.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_config_file_the_service_cannot_read_is_an_error_not_defaults(tmp_path):
    # A typo in --config (or a file the account cannot read) must not start Voila on defaults.
    for flag in ("--exec-voila", "--print-voila-command"):
        result = subprocess.run([venv_bin_dir() / "voila-publisher", f"--config={tmp_path / 'no-such-config.py'}", flag],
                                capture_output=True, text=True, env=child_env(), timeout=60)
        assert result.returncode == 2 and "cannot read the config file" in result.stderr, (flag, result.stderr)
