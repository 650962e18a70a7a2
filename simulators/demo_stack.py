"""Start and stop every part of the demo, in order, on loopback ports of this machine."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from jupyter_config.demo.hub_config import DemoHubSettings, hub_config, profiles_for
from simulators.ec2sim import make_network
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS, MotoServer
from simulators.noderunner import NodeRunnerProcess
from simulators.noderunner_openstack import NovaNodeRunnerProcess
from simulators.processes import venv_bin_dir
from simulators.seaweedfs import (
    ADMIN_CREDENTIALS,
    NODE_DATA_ROLE_ARN,
    REGION,
    SeaweedS3,
)

BUCKET = "notebooks"
AMI_PARAMETER = "/hybrid/demo/jupyter-node-ami"
PASSWORD = "demo"
DEMO_USER = "researcher"
LDAP_GPU_USER = "ada"  # with --ldap: in the directory's gpu-users group


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _node_image_skeleton(directory: Path, welcome: Path) -> Path:
    """What the simulated node image ships for new homes (RemoteSpawner.home_skeleton), readable
    by the researchers' accounts the nodes run as."""
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    target = directory / "welcome.ipynb"
    shutil.copyfile(welcome, target)
    target.chmod(0o644)
    return directory


def welcome_notebook(path: Path) -> Path:
    """The notebook every researcher finds in their home: something to sync and publish, with a
    plot and a slider, so its dashboard is a live one (widgets need their kernel)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Rainfall at the field station\n\nPress **Sync** to keep this notebook in the bucket, "
            "**Publish** to make it a public dashboard (viewers see the results, not the code). "
            "Move the slider: the plot follows."
        ),
        nbformat.v4.new_code_cell(
            "rain_mm = [12, 0, 3, 28, 7, 0, 15]\n"
            "print(f'Wettest day: {max(rain_mm)} mm, weekly total: {sum(rain_mm)} mm')"
        ),
        nbformat.v4.new_code_cell(
            "import ipywidgets as widgets\n"
            "import matplotlib.pyplot as plt\n"
            "\n"
            "@widgets.interact(days=widgets.IntSlider(min=1, max=7, value=7, description='Days'))\n"
            "def rain_plot(days):\n"
            "    fig, ax = plt.subplots(figsize=(6, 3))\n"
            "    ax.bar(range(1, days + 1), rain_mm[:days], color='tab:blue')\n"
            "    ax.set_xlabel('day'); ax.set_ylabel('rain (mm)')\n"
            "    ax.set_title(f'First {days} days')\n"
            "    plt.show()\n"
            "    print(f'Rain over the first {days} days: {sum(rain_mm[:days])} mm')"
        ),
    ]
    nbformat.write(nb, path)
    return path


def slurm_available() -> str | None:
    """None when a local Slurm cluster can back a profile, else why not."""
    if not shutil.which("slurmctld") or not shutil.which("slurmd") or not shutil.which("munged"):
        return "Slurm is not installed"
    if os.geteuid() != 0:
        return "starting Slurm daemons needs root"
    return None


def ensure_account(name: str) -> None:
    """Slurm jobs run as the hub user's Unix account."""
    from simulators.accounts import ensure_account as ensure

    ensure(name)


@dataclass
class DemoStack:
    """Everything the demo runs; :meth:`start` brings it up, :meth:`stop` ends all of it."""

    directory: Path
    with_slurm: bool = True
    with_openstack: bool = True
    # A fault proxy (simulators/fault_proxy.py) between the hub and EC2/SSM, and between the
    # nodes and the bucket: the soak (benchmarks/soak.py) turns faults on and off through them.
    with_fault_proxies: bool = False
    proxies: dict = field(default_factory=dict)
    # Logins against a local slapd over LDAPS instead of the demo password (docs/ldap.md).
    with_ldap: bool = False
    urls: dict = field(default_factory=dict)
    # Groups of stop functions, in start order; a group's parts stop side by side.
    _stops: list = field(default_factory=list)

    def start(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.with_ldap:  # before anything starts: the demo asked for is the demo to run
            from simulators import ldap

            reason = ldap.slapd_available()
            if reason:
                raise RuntimeError(f"--ldap needs slapd: {reason}")
        d = self.directory
        if not d.exists():
            # Whatever the umask: the simulated nodes and Slurm jobs run as the researchers' own
            # accounts and munged wants every directory above its socket traversable by all.
            # 0711 lets them pass through without letting them list what the stack keeps here.
            d.mkdir(parents=True)
            d.chmod(0o711)
        from simulators.voila_host import PublicHost

        moto = MotoServer(d / "moto")
        # With its STS: each node gets credentials for its own user's prefix (docs/security.md).
        s3 = SeaweedS3(d / "seaweedfs", sts=True)
        # The publisher hands rendering to Voila through nginx: no nginx, no public host.
        host = PublicHost(d / "public-host") if shutil.which("nginx") else None
        if host is None:
            say("no public Voila host: nginx is not installed (Publish will say it is not set up)")
        say("starting moto server (EC2), SeaweedFS (S3)" + (" and the public Voila host (publisher, Voila, nginx)…" if host else "…"))
        # The bucket and the public host start in the background while the cloud side and the
        # hub come up: they are only needed once a researcher works. They stop last.
        backing: list = []
        self._stops.append(backing)
        # Everything else stops side by side before them: the hub needs no node to stop, and
        # the nodes' last sync needs only the bucket.
        self._compute: list = []
        self._stops.append(self._compute)
        with ThreadPoolExecutor(2) as pool:
            pending = [(s3, pool.submit(self._start_bucket, s3))]
            if host is not None:
                pending.append((host, pool.submit(host.start)))
            try:
                moto.start()
                backing.append(moto.stop)
                hub, settings, runner = self._start_cloud_and_hub(moto, s3, host)
            finally:
                for part, future in pending:
                    if future.exception() is None:
                        backing.append(part.stop)
            for _, future in pending:
                future.result()

        self.urls = {
            "hub": hub.url,
            "login": f"{hub.url}/hub/login",
            "user": DEMO_USER,
            "password": PASSWORD,
            "dashboards": host.url if host else None,
            "s3": s3.url,
            "bucket": BUCKET,
            "moto": moto.url,
            "profiles": [p["slug"] for p in profiles_for(settings)],
            "directory": str(d),
            "ldap": self.with_ldap,
        }
        self.parts = {"moto": moto, "s3": s3, "host": host, "runner": runner, "hub": hub,
                      "openstack": getattr(self, "_openstack_fake", None), "slurm": getattr(self, "_slurm_cluster", None)}
        # Written last: tools (and the browser test) wait for this file.
        # Whole or not at all (a rename): a tool that sees the file must never read it half-written.
        partial = d / ".demo.json.partial"
        partial.write_text(json.dumps(self.urls, indent=1))
        os.replace(partial, d / "demo.json")

    @staticmethod
    def _start_bucket(s3: SeaweedS3) -> None:
        s3.start()
        s3.create_bucket(BUCKET)

    def _start_cloud_and_hub(self, moto, s3, host):
        """The private network on moto, the node runners, Slurm, and the hub (in this order)."""
        d = self.directory
        network = make_network(moto.url, ami_parameter=AMI_PARAMETER)
        hub_id = self.hub_id = f"demo-{secrets.token_hex(3)}"
        ec2_url, s3_url = moto.url, s3.url
        if self.with_fault_proxies:
            from simulators.fault_proxy import FaultProxy

            self.proxies = {"ec2": FaultProxy(moto.url).start(), "s3": FaultProxy(s3.url).start()}
            self._compute.extend(p.stop for p in self.proxies.values())
            ec2_url, s3_url = self.proxies["ec2"].url, self.proxies["s3"].url

        # As root, simulated nodes run notebook code as the researcher's account (a real node
        # is another machine; this one shares the hub's disk), and their servers refuse root.
        node_user = "{username}" if os.geteuid() == 0 else ""
        self._node_user = node_user
        runner = NodeRunnerProcess(
            d / "nodes", hub_id=hub_id, endpoint_url=moto.url, region=REGION, allow_root=not node_user
        )
        runner.env.update(MOTO_CREDENTIALS)
        say("starting the node runner (boots EC2 instances as local processes)…")
        runner.start()
        self._compute.append(runner.stop)

        slurm_env = self._maybe_start_slurm()
        clouds_yaml = self._maybe_start_openstack(hub_id)
        ldap = self._maybe_start_ldap()

        secret_file = ""
        publisher_env = {}
        if host is not None:
            secret_file = d / "hub-secrets" / "publisher-secret"
            secret_file.parent.mkdir(mode=0o700, exist_ok=True)
            # The shared secret goes through a 0600 file: never a command line or a log.
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(host.secret)
            publisher_env = {"HYBRID_PUBLISHER_URL": host.api_url, "HYBRID_PUBLIC_URL": host.url}
        homes = d / "homes"
        homes.mkdir(exist_ok=True)
        os.chmod(homes, 0o755)
        settings = DemoHubSettings(
            moto_url=ec2_url,
            region=REGION,
            hub_id=hub_id,
            ami_parameter=AMI_PARAMETER,
            subnet=network["subnet"],
            security_group=network["sg"],
            python=str(venv_bin_dir() / "python"),
            singleuser=str(venv_bin_dir() / "jupyterhub-singleuser"),
            homes=str(homes),
            welcome_notebook=str(welcome_notebook(d / "welcome.ipynb")),
            node_image_skeleton=str(_node_image_skeleton(d / "node-image-skel", d / "welcome.ipynb")),
            publisher_secret_file=str(secret_file),
            # No S3 key here: the hub's issuer hands each node its own user's credentials and
            # sets HYBRID_SYNC_BUCKET / HYBRID_SYNC_PREFIX / HYBRID_S3_ENDPOINT_URL.
            node_environment={
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "HYBRID_S3_REGION": REGION,
                **publisher_env,
            },
            bucket_credentials={"bucket": BUCKET, "url": s3_url, "role_arn": NODE_DATA_ROLE_ARN, "profile": HUB_STS_PROFILE},
            slurm=slurm_env is not None,
            openstack_clouds_yaml=clouds_yaml or "",
            node_user=node_user,
            ldap=ldap,
        )
        hub_sts = {"AWS_SHARED_CREDENTIALS_FILE": str(_hub_sts_credentials(d / "hub-sts-credentials"))}
        hub = LocalHub(d / "hub", hub_config(settings), env={**MOTO_CREDENTIALS, **hub_sts, **(slurm_env or {})}, password=PASSWORD)
        say("starting JupyterHub with HybridSpawner…")
        hub.start(timeout=90)
        self._compute.append(hub.stop)
        return hub, settings, runner

    def _maybe_start_slurm(self) -> dict | None:
        if not self.with_slurm:
            return None
        reason = slurm_available()
        if reason:
            say(f"no Slurm profile: {reason}")
            return None
        from simulators.slurm import LocalSlurm

        try:
            ensure_account(DEMO_USER)
            cluster = LocalSlurm(self.directory / "slurm", partitions=("debug",))
            say("starting a local Slurm cluster (munge, slurmctld, slurmd)…")
            cluster.start()
        except Exception as e:  # the demo still works with EC2 alone
            say(f"no Slurm profile: the local cluster did not start ({e})")
            return None
        self._compute.append(cluster.stop)
        self._slurm_cluster = cluster
        return {"SLURM_CONF": str(cluster.conf_path)}

    def _maybe_start_ldap(self) -> dict:
        """slapd over LDAPS with the demo's people: researcher, and ada in gpu-users."""
        if not self.with_ldap:
            return {}
        from simulators.ldap import GROUPS, PEOPLE, LocalSlapd

        slapd = LocalSlapd(
            self.directory / "ldap",
            people={DEMO_USER: PASSWORD, LDAP_GPU_USER: PASSWORD},
            groups={"gpu-users": [LDAP_GPU_USER], "researchers": [DEMO_USER, LDAP_GPU_USER]},
        )
        say("starting slapd (LDAPS, its own CA) for the logins…")
        slapd.start()
        self._compute.append(slapd.stop)
        return {"host": "127.0.0.1", "port": slapd.port, "ca_file": str(slapd.ca_cert), "people_base": PEOPLE, "groups_base": GROUPS}

    def _maybe_start_openstack(self, hub_id: str) -> str | None:
        """The OpenStack fake and its node runner."""
        if not self.with_openstack:
            return None
        from simulators.openstack import FakeOpenStack

        base = self.directory / "openstack"
        try:
            fake = FakeOpenStack(base)
            say("starting the OpenStack fake (Keystone, Nova, Neutron, Glance) and its node runner…")
            fake.start()
        except Exception as e:
            say(f"no OpenStack profile: the fake did not start ({e})")
            return None
        self._compute.append(fake.stop)
        self._openstack_fake = fake
        clouds_yaml = fake.write_clouds_yaml(base / "clouds.yaml")
        runner = NovaNodeRunnerProcess(
            base / "nodes", clouds_yaml=clouds_yaml, hub_id=hub_id, log_dir=base, allow_root=not self._node_user
        )
        runner.start()
        self._compute.append(runner.stop)
        return str(clouds_yaml)

    def stop(self) -> None:
        """Stop every part that started, the last started first (a group side by side)."""
        while self._stops:
            group = self._stops.pop()
            with ThreadPoolExecutor(max(1, len(group))) as pool:
                for stop, future in [(stop, pool.submit(_timed, stop)) for stop in group]:
                    name = type(getattr(stop, "__self__", stop)).__name__
                    try:
                        say(f"stopped {name} ({future.result():.1f} s)")
                    except Exception as e:  # keep stopping the others
                        print(f"demo: stopping {name} failed: {e}", file=sys.stderr)


HUB_STS_PROFILE = "hub-sts"


def _hub_sts_credentials(path: Path) -> Path:
    """The hub's own identity at the store's STS (SeaweedFS's admin plays the hub's role), in a
    0600 shared-credentials file the hub reads by profile: never a node's, never a command line."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            f"[{HUB_STS_PROFILE}]\n"
            f"aws_access_key_id = {ADMIN_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
            f"aws_secret_access_key = {ADMIN_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
        )
    return path


def _timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start
