"""Hub side: before a stop ends a node, have its server send the researcher's work to the bucket.

A stop from the hub (an admin, the idle culler, the hub's own stop button) terminates the node.
The server's own final sync (c.BucketSync.sync_on_stop) runs only if the node's shutdown gives it
the time, and a terminated instance's shutdown does not: the boot script's runuser kills its
child two seconds after SIGTERM, the simulated node five, and what was written since the last
sync was lost with the disk (tested). So the hub asks first, with the server's own token:
POST /hybrid/sync, then follows the job, bounded by RemoteSpawner.stop_sync_timeout. Whatever
happens (no bucket configured: 409; a server that does not answer), the stop goes on: a stop
must never hang on a sick node.
"""

from __future__ import annotations

import asyncio
import json
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

FINISHED = ("done", "failed", "cancelled")


async def _call(url: str, token: str, method: str = "GET", body: dict | None = None, timeout: float = 10.0):
    request = HTTPRequest(url, method=method, headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                          body=None if body is None else json.dumps(body), request_timeout=timeout,
                          connect_timeout=min(5.0, timeout))
    try:
        answer = await AsyncHTTPClient().fetch(request)
        return answer.code, json.loads(answer.body or b"null")
    except HTTPClientError as error:
        text = error.response.body.decode(errors="replace") if error.response is not None else ""
        return error.code, text


async def sync_before_stop(server_url: str, token: str, timeout: float) -> str:
    """Run a sync of the whole home on the server at ``server_url`` and wait for it (at most
    ``timeout`` seconds). Returns one line for the hub log, never raises on the node's account."""
    base = server_url.rstrip("/") + "/hybrid/sync"
    deadline = time.monotonic() + timeout
    try:
        while True:  # a sync already running (the Lab's, the periodic one): wait for it, then ours
            status, job = await _call(base, token, "POST", {}, timeout=max(1.0, deadline - time.monotonic()))
            if status != 409 or "busy" not in str(job).lower() or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        if status != 202 or not isinstance(job, dict):
            return f"no sync before the stop (the server answered {status}: {str(job)[:200]})"
        while job.get("state") not in FINISHED:
            if time.monotonic() > deadline:
                return f"sync {job.get('id')} still running after {timeout:.0f} s; stopping anyway"
            await asyncio.sleep(0.5)
            status, answer = await _call(f"{base}/{job.get('id')}", token, timeout=max(1.0, deadline - time.monotonic()))
            if status == 200 and isinstance(answer, dict):
                job = answer
        return f"sync before the stop: {job.get('state')}: {job.get('message', '')}"
    except Exception as error:  # noqa: BLE001 - the node may be gone or sick: the stop goes on
        return f"no sync before the stop ({type(error).__name__}: {str(error)[:200]})"
