"""Node side: watch the instance metadata (IMDSv2) of a spot instance for AWS's notices.

AWS reclaims spot capacity with two minutes' warning: ``spot/instance-action`` in the instance
metadata turns from 404 into ``{"action": "terminate", "time": "...Z"}``. Earlier, and not
always followed by a reclaim, it may post a rebalance recommendation
(``events/recommendations/rebalance``). The node agent starts :class:`SpotWatcher` when the hub
asks for it (a spot server: ``spot_watch`` in the bootstrap answer). It looks every couple of
seconds, and

* on the interruption notice, at once: tells the researcher (the server extension's
  ``POST /hybrid/notices``, which JupyterLab shows) and the hub (``POST
  /hub/api/hybrid/interruption`` with the notice secret, so that the hub records why the server
  is about to end), runs the final sync of the home through the server's own ``POST
  /hybrid/sync`` (with the server's API token, as the hub's sync before a stop does), and then
  tells both again with what the sync did;
* on a rebalance recommendation: syncs and tells the researcher (nothing for the hub).

On an instance that is not spot (the metadata says so), or where no metadata service answers
(another cloud, IMDS turned off), it stops looking and does nothing else. Only the hub's and the
server's own endpoints are called; nothing is sent to the hub but a time, a state and numbers.

The parsing is pure (the first section) and unit-tested; standard library only, Python 3.9+,
like the rest of the node agent (docs/node-image.md).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Callable, Optional

DEFAULT_IMDS = "http://169.254.169.254"
TOKEN_TTL = 21600  # seconds; the most IMDS grants, so one token lasts the watch
ACTIONS = ("terminate", "stop", "hibernate")
INSTANCE_ACTION = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
LIFECYCLE = "/latest/meta-data/instance-life-cycle"
SYNC_FINISHED = ("done", "error")
# The final sync must be over before AWS pulls the plug; what it has not sent by then stays
# unsent either way, and the researcher must be told while the server still answers.
SYNC_MARGIN = 10.0


# -- pure: what the metadata says, and what is reported -------------------------------------------
def parse_time(text) -> datetime:
    """An IMDS time ("2026-12-07T12:04:00Z", fractions allowed) as an aware UTC datetime."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError("not a UTC time ending in Z")
    moment = datetime.fromisoformat(text[:-1])
    if moment.tzinfo is not None:
        raise ValueError("a time zone besides the Z")
    return moment.replace(tzinfo=timezone.utc)


def iso_z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instance_action(status: int, body: str) -> Optional[dict]:
    """``{"action", "time"}`` of a spot interruption notice, or None (404: no notice).

    Raises ValueError for an answer that is neither (the watcher logs it and looks again).
    """
    if status == 404:
        return None
    if status != 200:
        raise ValueError(f"instance-action answered {status}")
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("action") not in ACTIONS:
        raise ValueError("instance-action without a known action")
    return {"action": data["action"], "time": iso_z(parse_time(data.get("time")))}


def parse_rebalance(status: int, body: str) -> Optional[str]:
    """The rebalance recommendation's ``noticeTime`` (normalised), or None (404: none)."""
    if status == 404:
        return None
    if status != 200:
        raise ValueError(f"rebalance answered {status}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("rebalance is not an object")
    return iso_z(parse_time(data.get("noticeTime")))


def sync_summary(status: int, job) -> dict:
    """What a finished (or failed to start) sync tells the researcher and the hub: a state and numbers.

    ``status`` is the answer to ``POST /hybrid/sync`` (202, or 409 when no bucket is set up);
    ``job`` the Job JSON as it ended, or whatever the server answered.
    """
    if status == 409 and "not-configured" in json.dumps(job):
        return {"state": "not-configured", "files": 0, "uploaded": 0, "errors": 0, "finished": None}
    if not isinstance(job, dict) or status not in (200, 202):
        return {"state": "failed", "files": 0, "uploaded": 0, "errors": 0, "finished": None}
    state = job.get("state")
    if state not in SYNC_FINISHED:
        state = "timeout" if state == "running" else "failed"
    errors = len(job.get("errors") or []) + len(job.get("conflicts") or [])
    return {
        "state": state,
        # Files the bucket now holds as they are here: sent now, or found unchanged.
        "files": int(job.get("uploaded") or 0) + int(job.get("skipped") or 0),
        "uploaded": int(job.get("uploaded") or 0),
        "errors": errors,
        "finished": job.get("finished") if state in SYNC_FINISHED else None,
    }


def started_before(job: dict, moment: datetime) -> bool:
    """Whether a Job (its ``started``, e.g. "2026-12-07T12:02:00.123Z") began before ``moment``."""
    try:
        started = datetime.fromisoformat(str(job.get("started")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return started < moment


def sync_deadline(notice_time: str, now: datetime, longest: float = 110.0) -> float:
    """Seconds the final sync may take: until SYNC_MARGIN before the reclaim, at least 1 s."""
    left = (parse_time(notice_time) - now).total_seconds() - SYNC_MARGIN
    return max(1.0, min(longest, left))


# -- I/O ----------------------------------------------------------------------------------------
class MetadataUnavailable(Exception):
    """No instance metadata service answers here (or it refuses tokens)."""


class IMDSClient:
    """IMDSv2: a session token from ``PUT /latest/api/token``, then GETs carrying it."""

    def __init__(self, endpoint: str, timeout: float = 1.0):
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._token = ""
        self._token_until = 0.0

    def _token_value(self) -> str:
        if self._token and time.monotonic() < self._token_until:
            return self._token
        request = urllib.request.Request(
            self.endpoint + "/latest/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                self._token = answer.read().decode().strip()
        except (OSError, ValueError) as e:  # HTTPError is an OSError: IMDSv1 only, or none at all
            raise MetadataUnavailable(f"no IMDSv2 token ({type(e).__name__}: {e})") from None
        self._token_until = time.monotonic() + TOKEN_TTL - 60
        return self._token

    def get(self, path: str) -> tuple[int, str]:
        """(status, body); a refused token (401: expired, IMDS restarted) is renewed once."""
        for attempt in (1, 2):
            request = urllib.request.Request(self.endpoint + path, headers={"X-aws-ec2-metadata-token": self._token_value()})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 1:
                    self._token = ""
                    continue
                return e.code, ""
            except (OSError, ValueError) as e:
                raise MetadataUnavailable(f"{path}: {type(e).__name__}") from None
        return 401, ""


def _call(url: str, *, token: str = "", body=None, timeout: float = 10.0) -> tuple[int, object]:
    """One JSON request (POST when ``body`` is given); (status, parsed answer or text)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


class SpotWatcher(threading.Thread):
    """Looks at the metadata every ``interval`` seconds until a notice is handled or it is stopped.

    ``server_url`` is the local server's base URL (``http://127.0.0.1:8888/user/ana/``) and
    ``server_token`` its API token; ``hub_url`` the hub's interruption endpoint and
    ``secret`` the notice secret from the bootstrap answer.
    """

    def __init__(self, imds: IMDSClient, server_url: str, server_token: str, hub_url: str, secret: str,
                 interval: float = 2.0, log: Callable[[str], None] = print,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        super().__init__(name="spot-watch", daemon=True)
        self.imds = imds
        self.server_url = server_url.rstrip("/") + "/"
        self._server_token = server_token
        self.hub_url = hub_url
        self._secret = secret
        self.interval = interval
        self.log = log
        self.clock = clock
        self.stopped = threading.Event()
        self.outcome = ""  # why it stopped looking: "interruption", "not-spot", "no-metadata", "stopped"
        self.rebalance_seen = ""
        self.reports: list[dict] = []  # what was told to the server, for tests

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.outcome = self._watch()
        except Exception as e:  # noqa: BLE001 - a watcher must never take the node agent down
            self.log(f"spot watch stopped: {type(e).__name__}: {e}")
            self.outcome = "failed"

    def _watch(self) -> str:
        answered = False  # has the metadata service ever answered?
        misses = 0
        while not self.stopped.is_set():
            try:
                if not answered:
                    spot = self._is_spot()
                    answered = True
                    if not spot:
                        self.log("spot watch: the instance metadata says this is no spot instance; not watching")
                        return "not-spot"
                action = parse_instance_action(*self.imds.get(INSTANCE_ACTION))
                if action is not None:
                    self.handle_interruption(action)
                    return "interruption"
                rebalance = parse_rebalance(*self.imds.get(REBALANCE))
                if rebalance and rebalance != self.rebalance_seen:
                    self.rebalance_seen = rebalance
                    self.handle_rebalance(rebalance)
            except MetadataUnavailable as e:
                # Never answered after a few tries: no metadata service here (another cloud, or
                # IMDS turned off). Once it has answered, a miss is a blip: keep looking.
                misses += 1
                if not answered and misses >= 3:
                    self.log(f"spot watch: no instance metadata service ({e}); not watching")
                    return "no-metadata"
            except ValueError as e:
                self.log(f"spot watch: unexpected metadata answer ({e}); looking again")
            self.stopped.wait(self.interval)
        return "stopped"

    def _is_spot(self) -> bool:
        status, body = self.imds.get(LIFECYCLE)
        # An IMDS without the entry (404) is taken as spot: the hub asked for the watch.
        return status != 200 or body.strip() == "spot"

    # -- what happens on a notice ----------------------------------------------------------------
    def handle_interruption(self, action: dict) -> None:
        noticed = iso_z(self.clock())
        self.log(f"spot interruption notice: {action['action']} at {action['time']}; syncing the home now")
        notice = {"kind": "interruption", "action": action["action"], "time": action["time"], "noticed": noticed,
                  "sync": {"state": "running", "files": 0, "uploaded": 0, "errors": 0, "finished": None}}
        self.tell(notice)
        notice["sync"] = self.final_sync(sync_deadline(action["time"], self.clock()))
        self.tell(notice)
        self.log(f"spot interruption: sync {notice['sync']['state']}, {notice['sync']['files']} file(s) in the bucket")

    def handle_rebalance(self, notice_time: str) -> None:
        self.log(f"spot rebalance recommendation at {notice_time}; syncing the home")
        notice = {"kind": "rebalance", "time": notice_time, "noticed": iso_z(self.clock()),
                  "sync": self.final_sync(60.0)}
        self.tell(notice, hub=False)

    def tell(self, notice: dict, hub: bool = True) -> None:
        """The researcher (through the server) and the hub; each best effort, the other goes on."""
        self.reports.append(json.loads(json.dumps(notice)))
        try:
            status, _ = _call(self.server_url + "hybrid/notices", token=self._server_token, body=notice, timeout=5.0)
            if status != 200:
                self.log(f"spot watch: the server answered {status} to the notice")
        except (OSError, ValueError) as e:
            self.log(f"spot watch: could not tell the server ({type(e).__name__})")
        if not hub or not self.hub_url:
            return
        try:
            status, _ = _call(self.hub_url, body={"secret": self._secret, "notice": notice}, timeout=5.0)
            if status != 204:
                self.log(f"spot watch: the hub answered {status} to the notice")
        except (OSError, ValueError) as e:
            self.log(f"spot watch: could not tell the hub ({type(e).__name__})")

    def final_sync(self, limit: float) -> dict:
        """The whole home to the bucket through the server's sync; waits at most ``limit`` seconds.

        A sync that was already running when the notice came (the Lab's, the periodic one) is
        joined, then one more is run: it may have listed the home before the last edits.
        """
        deadline = time.monotonic() + limit
        began = self.clock().replace(microsecond=0)  # jobs say when they started to the millisecond
        base = self.server_url + "hybrid/sync"
        status, job = 0, None
        for _ in range(2):
            while True:
                try:
                    status, job = _call(base, token=self._server_token, body={}, timeout=max(1.0, deadline - time.monotonic()))
                except (OSError, ValueError) as e:
                    self.log(f"spot watch: the server's sync did not answer ({type(e).__name__})")
                    return sync_summary(0, None)
                # 409 busy: a restore is running; it ends soon or the deadline does.
                if status != 409 or "busy" not in json.dumps(job) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if status != 202 or not isinstance(job, dict):
                return sync_summary(status, job)
            job = self._follow(base, job, deadline)
            if job.get("state") == "running" or not started_before(job, began):
                break
        return sync_summary(200, job)

    def _follow(self, base: str, job: dict, deadline: float) -> dict:
        while job.get("state") == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                status, answer = _call(f"{base}/{job.get('id')}", token=self._server_token,
                                       timeout=max(1.0, deadline - time.monotonic()))
            except (OSError, ValueError):
                continue
            if status == 200 and isinstance(answer, dict):
                job = answer
        return job
