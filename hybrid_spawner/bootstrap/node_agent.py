"""The node side of the bootstrap (``python3 -m hybrid_spawner.node_agent``), run by the boot script.

1. Redeem the single-use credential at the hub (retrying while the hub is unreachable, giving up
   at once on 403), receiving the single-user server's environment and command.
2. With ``restore_on_start``, restore the user's files from the bucket first (restore_step.py);
   with ``home_skeleton``, give a new home the image's starter files (skeleton.py).
3. Start ``jupyterhub-singleuser`` on this node's address with that environment; the credential
   is removed from the child's environment.
4. Once the server accepts connections, report its port to the hub with the report secret.
   On a spot instance (``spot_watch`` in the answer) watch the instance metadata for AWS's
   interruption notice from then on (spot_watch.py: final sync, the researcher and the hub told).
5. Stay in the foreground forwarding SIGTERM/SIGINT, and exit with the server's status.

Bucket credentials (when the hub has an issuer, docs/security.md): the redemption carries the
user's first credentials and a refresh secret. The agent writes the credentials to a file only
this account can read (``HYBRID_S3_CREDENTIALS_FILE`` in the server's environment; the sync
re-reads it), and a thread fetches the next ones from the hub's refresh endpoint when half of
their remaining lifetime has passed, replacing the file atomically. The file is removed on exit.

Node-local settings (environment of the boot script, never sent by the hub):
``HYBRID_NODE_BIND_IP`` (default 0.0.0.0), ``HYBRID_NODE_PORT`` (default: the spawner's port, or
a free one when that is 0), ``HYBRID_NODE_EXTRA_ARGS`` (appended to the command, e.g.
``--allow-root`` where nodes run as root), ``HYBRID_NODE_READY_TIMEOUT`` (seconds, default 300),
``HYBRID_NODE_CREDENTIALS_DIR`` (where the credentials file goes; default a new private
temporary directory), ``HYBRID_IMDS_ENDPOINT`` (the instance metadata service the spot watch
asks; default http://169.254.169.254).
Only the standard library is used, so the agent runs on any Python 3.9+ of the node image (docs/node-image.md).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
import urllib.error
import urllib.request

REFUSED_EXIT = 3


def log(msg: str) -> None:
    print(f"[hybrid-node-agent] {msg}", file=sys.stderr, flush=True)


def post_json(url: str, body: dict, timeout: float = 15.0):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return r.status, json.loads(raw) if raw else None


def post_with_retry(url: str, body: dict, deadline: float):
    """POST until answered; 4xx are final (a refused credential does not get better)."""
    delay = 0.5
    while True:
        try:
            return post_json(url, body)
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500:
                raise
            reason = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            reason = type(e).__name__
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"hub did not answer at {url} ({reason})")
        log(f"hub not reachable yet ({reason}); retrying in {delay:.1f}s")
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def choose_port(bind_ip: str, configured: int) -> int:
    override = os.environ.get("HYBRID_NODE_PORT")
    if override:
        return int(override)
    if configured:
        return configured
    with socket.socket() as s:
        s.bind((bind_ip, 0))
        return s.getsockname()[1]


def wait_listening(host: str, port: int, child: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"single-user server exited with {child.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"single-user server not listening on port {port}")


# -- bucket credentials ---------------------------------------------------------------------
def write_credentials(path: str, credentials: dict) -> None:
    """Replace the credentials file atomically (readers never see half a file), mode 0600."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(credentials, f)
    os.replace(tmp, path)


def seconds_left(credentials: dict, now: datetime | None = None) -> float | None:
    """Seconds until the credentials expire, or None for keys that do not expire."""
    expiration = credentials.get("Expiration")
    if not expiration:
        return None
    moment = datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    return (moment - (now or datetime.now(timezone.utc))).total_seconds()


def refresh_delay(credentials: dict, now: datetime | None = None) -> float | None:
    """When to ask for the next credentials: after half of their remaining lifetime.

    Half leaves as much time for retries (hub restarting, network blip) as has been used, and
    never waits past the expiry. None: nothing to refresh.
    """
    left = seconds_left(credentials, now)
    return None if left is None else max(0.0, left / 2)


class CredentialRefresher(threading.Thread):
    """Keeps the credentials file current until stopped, the secret is refused, or keys never expire."""

    def __init__(self, url: str, secret: str, path: str, credentials: dict):
        super().__init__(name="bucket-credentials", daemon=True)
        self.url, self._secret, self.path, self.credentials = url, secret, path, credentials
        self.stopped = threading.Event()
        self.refreshes = 0
        self.created_dir = ""

    def run(self) -> None:
        retry = 1.0
        while True:
            delay = refresh_delay(self.credentials)
            if delay is None or self.stopped.wait(delay):
                return
            try:
                _, answer = post_json(self.url, {"secret": self._secret})
                self.credentials = answer["credentials"]
                write_credentials(self.path, self.credentials)
                self.refreshes += 1
                retry = 1.0
                left = seconds_left(self.credentials)
                log(f"bucket credentials refreshed; valid for {left:.0f}s" if left else "bucket credentials refreshed")
                continue
            except urllib.error.HTTPError as e:
                if e.code in (401, 403):
                    log("the hub revoked this server's bucket credentials; no more refreshes")
                    return
                wait = float(e.headers.get("Retry-After") or retry) if e.code == 429 else retry
                reason = f"HTTP {e.code}"
            except (OSError, ValueError, KeyError) as e:
                wait, reason = retry, type(e).__name__
            left = seconds_left(self.credentials) or 0.0
            log(f"bucket credential refresh failed ({reason}); retrying in {wait:.0f}s ({left:.0f}s left)")
            if self.stopped.wait(min(wait, max(0.5, left / 2))):
                return
            retry = min(retry * 2, 60.0)


def install_credentials(bundle: dict, bootstrap_url: str):
    """Write the first credentials and start their refresher; returns (file path, refresher)."""
    directory = os.environ.get("HYBRID_NODE_CREDENTIALS_DIR")
    created = not directory
    directory = directory or tempfile.mkdtemp(prefix="hybrid-bucket-")  # mode 0700
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "bucket-credentials.json")
    write_credentials(path, bundle["credentials"])
    url = bootstrap_url.rsplit("/", 1)[0] + "/bucket-credentials"
    refresher = CredentialRefresher(url, bundle["refresh_secret"], path, bundle["credentials"])
    refresher.created_dir = directory if created else ""
    refresher.start()
    return path, refresher


def resume_key_path() -> str:
    """Where a resumable node keeps its resume key: its own disk, outside the home (which is
    served and synced). The image creates the directory for the server's account."""
    return os.path.join(os.environ.get("HYBRID_NODE_STATE_DIR", "/var/lib/hybrid-node"), "resume-key")


def redeem(bootstrap_url: str, credential: str, deadline: float) -> dict:
    """The node's configuration from the hub. A node resumed with its disk (OpenStack unshelve)
    boots with its first, spent credential: it trades the resume key it kept instead, which the
    hub armed with a fresh credential; without a key, or with one refused, the credential."""
    try:
        with open(resume_key_path()) as f:
            key = f.read().strip()
    except OSError:
        key = ""
    if key:
        try:
            return post_with_retry(bootstrap_url, {"resume_key": key}, deadline)[1]
        except urllib.error.HTTPError as e:
            log(f"hub refused the resume key (HTTP {e.code}); trying the boot credential")
    return post_with_retry(bootstrap_url, {"credential": credential}, deadline)[1]


def keep_resume_key(key: str) -> None:
    """Keep the new resume key (0600, replaced atomically); without it the node cannot be resumed."""
    path = resume_key_path()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".resume-key.")
        with os.fdopen(fd, "w") as f:
            f.write(key)
        os.replace(tmp, path)
    except OSError as e:
        log(f"cannot keep the resume key in {path} ({e}); this node cannot be resumed after a shelve")


def main() -> int:
    bootstrap_url = os.environ.pop("HYBRID_BOOTSTRAP_URL", "")
    credential = os.environ.pop("HYBRID_BOOTSTRAP_CREDENTIAL", "")
    if not bootstrap_url or not credential:
        log("HYBRID_BOOTSTRAP_URL and HYBRID_BOOTSTRAP_CREDENTIAL must be set by the boot script")
        return 2
    deadline = time.monotonic() + float(os.environ.get("HYBRID_NODE_READY_TIMEOUT", "300"))
    try:
        config = redeem(bootstrap_url, credential, deadline)
    except urllib.error.HTTPError as e:
        log(f"hub refused the bootstrap credential (HTTP {e.code}); not starting")
        return REFUSED_EXIT
    del credential
    if config.get("resume_key"):
        keep_resume_key(config.pop("resume_key"))

    bind_ip = os.environ.get("HYBRID_NODE_BIND_IP", "0.0.0.0")
    port = choose_port(bind_ip, int(config.get("port") or 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_NODE_")}
    env.update(config["environment"])
    refresher = None
    if config.get("bucket_credentials"):
        path, refresher = install_credentials(config.pop("bucket_credentials"), bootstrap_url)
        env["HYBRID_S3_CREDENTIALS_FILE"] = path
    if config.get("restore"):
        restore_at_start(config, env, bootstrap_url, deadline)
    if config.get("skeleton"):  # after the restore: the researcher's synced files win
        copy_starter_files(config["skeleton"])
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if config.get("spot_watch"):  # the server tells JupyterLab to listen for the notices
        env["HYBRID_NOTICES_WATCHED"] = "1"
    env["JUPYTERHUB_SERVICE_URL"] = f"http://{bind_ip}:{port}{prefix}"
    command = list(config["command"]) + shlex.split(os.environ.get("HYBRID_NODE_EXTRA_ARGS", ""))
    log(f"starting {command[0]} on {bind_ip}:{port}")
    child = subprocess.Popen(command, env=env)

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    probe_host = "127.0.0.1" if bind_ip in ("0.0.0.0", "") else bind_ip
    try:
        wait_listening(probe_host, port, child, deadline)
        port_url = bootstrap_url.rsplit("/", 1)[0] + "/port"
        post_with_retry(port_url, {"secret": config["report_secret"], "port": port}, deadline)
    except Exception as e:  # the hub gives up on its own timeout; do not leave a server behind
        log(f"bootstrap failed: {e}")
        forward(signal.SIGTERM, None)
        child.wait()
        _drop_credentials(refresher)
        return 1
    log(f"reported port {port} to the hub")
    watcher = start_spot_watch(config, env, f"http://{probe_host}:{port}{prefix}", bootstrap_url)
    status = child.wait()
    if watcher is not None:
        watcher.stopped.set()
    _drop_credentials(refresher)
    return status


def start_spot_watch(config: dict, env: dict, server_url: str, bootstrap_url: str):
    """On a spot server, the watch for AWS's interruption notice (spot_watch.py); else None."""
    spec = config.get("spot_watch")
    if not isinstance(spec, dict) or not spec.get("secret"):
        return None
    from hybrid_spawner.bootstrap.spot_watch import DEFAULT_IMDS, IMDSClient, SpotWatcher

    watcher = SpotWatcher(
        IMDSClient(os.environ.get("HYBRID_IMDS_ENDPOINT") or DEFAULT_IMDS),
        server_url,
        env.get("JUPYTERHUB_API_TOKEN", ""),
        bootstrap_url.rsplit("/", 1)[0] + "/interruption",
        spec["secret"],
        interval=float(spec.get("interval") or 2.0),
        log=log,
    )
    watcher.start()
    log(f"watching the instance metadata for spot notices every {watcher.interval:g}s")
    return watcher


def copy_starter_files(spec: dict) -> None:
    """home_skeleton: the image's starter files into a new home (skeleton.py)."""
    from hybrid_spawner.bootstrap.skeleton import populate_home

    root = os.path.abspath(os.path.expanduser(spec.get("root") or "") or os.getcwd())
    try:
        copied = populate_home(spec["source"], root)
    except OSError as e:  # a home without starter files still works
        log(f"could not copy the starter files from {spec['source']}: {e}")
        return
    if copied:
        log(f"copied {len(copied)} starter file(s) from {spec['source']} into the new home")


def restore_at_start(config: dict, env: dict, bootstrap_url: str, deadline: float) -> None:
    """restore_on_start: the user's files from the bucket before the server opens (restore_step)."""
    from hybrid_spawner.bootstrap.restore_step import run_restore

    progress_url = bootstrap_url.rsplit("/", 1)[0] + "/progress"

    def report(fields: dict) -> None:
        try:
            post_json(progress_url, {"secret": config["report_secret"], "restore": fields}, timeout=5.0)
        except Exception as e:  # the spawn page misses a line; the restore goes on
            log(f"progress report failed: {e}")

    # Leave the server a minute of the hub's patience to start after the restore.
    job = run_restore(config["restore"], env, report, deadline - 60.0)
    log(f"restore at start: {job.get('state')}: {job.get('message')}")


def _drop_credentials(refresher) -> None:
    """Stop refreshing and remove the credentials from the node's disk."""
    if refresher is None:
        return
    refresher.stopped.set()
    try:
        os.remove(refresher.path)
        if refresher.created_dir:
            os.rmdir(refresher.created_dir)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
