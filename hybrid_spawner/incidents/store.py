"""Incident records: one JSON file the hub alone reads and writes.

A record is created *before* a node is isolated (so that no spawn can race the isolation), holds
what each step did, and stays after release as the incident's history. The file is small (one
record per incident) and replaced whole on every change (temp file + rename, mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

_lock = threading.Lock()


class IncidentStore(LoggingConfigurable):
    path = Unicode(
        "hybrid_incidents.json",
        config=True,
        help="""File holding the incident records (quarantines and their release). Relative paths
        are under the hub's working directory, like jupyterhub.sqlite. Keep it with the hub's
        other private files (mode 0600, written by the hub only) and in its backups: it is what
        blocks a quarantined user's spawns.""",
    )

    def _read(self) -> dict:
        try:
            return json.loads(Path(self.path).read_text())
        except FileNotFoundError:
            return {"incidents": []}

    def _write(self, data: dict) -> None:
        target = Path(self.path).absolute()
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def all(self) -> list[dict]:
        with _lock:
            return self._read()["incidents"]

    def get(self, incident_id: str) -> dict | None:
        return next((i for i in self.all() if i["id"] == incident_id), None)

    def open_for(self, user: str) -> dict | None:
        """The user's open incident (spawns are refused while there is one)."""
        return next((i for i in self.all() if i["user"] == user and not i.get("released")), None)

    def create(self, **fields) -> dict:
        record = {
            "id": f"inc-{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(3)}",
            "created": time.time(),
            "released": None,
            "actions": [],
            **fields,
        }
        with _lock:
            data = self._read()
            data["incidents"].append(record)
            self._write(data)
        return record

    def update(self, incident_id: str, **fields) -> dict:
        with _lock:
            data = self._read()
            for record in data["incidents"]:
                if record["id"] == incident_id:
                    record.update(fields)
                    self._write(data)
                    return record
        raise KeyError(incident_id)
