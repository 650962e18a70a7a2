"""What a booting node may tell the spawn page while it restores the user's notebooks.

The node is not trusted with the page's text: it reports numbers and a state, the hub writes
the sentence. Pure; the hub handler and the spawner use it, the node agent sends the fields.
"""

from __future__ import annotations

from typing import Any

COUNTS = ("files_done", "files_total", "bytes_done", "bytes_total", "conflicts")
STATES = ("running", "done", "error", "timeout")


def validate_restore_progress(value: Any) -> dict:
    """The node's report as ``{"state": str, counts...}``; raises ValueError for anything else."""
    if not isinstance(value, dict):
        raise ValueError("restore progress must be a JSON object")
    state = value.get("state")
    if state not in STATES:
        raise ValueError(f"restore progress state must be one of {', '.join(STATES)}")
    clean = {"state": state}
    for name in COUNTS:
        number = value.get(name, 0)
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**53:
            raise ValueError(f"restore progress {name} must be a non-negative integer")
        clean[name] = number
    return clean


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop returns at GB


def restore_progress_message(progress: dict) -> str:
    """The spawn page's sentence for a validated report."""
    files = f"{progress['files_done']:,} of {progress['files_total']:,} files"
    size = f"{human_bytes(progress['bytes_done'])} of {human_bytes(progress['bytes_total'])}"
    state = progress["state"]
    if state == "running":
        return f"Restoring your notebooks from the bucket: {files}, {size}"
    conflicts = progress["conflicts"]
    kept = (
        f"; {conflicts} file{'s' if conflicts != 1 else ''} differed from the bucket: "
        "the bucket's copies are beside them" if conflicts else ""
    )
    if state == "done":
        return f"Restored your notebooks from the bucket: {files}, {size}{kept}"
    if state == "timeout":
        return f"Restoring your notebooks took too long; the server starts with {files} restored{kept}"
    return f"Restoring your notebooks failed after {files}; the server starts anyway (details in JupyterLab){kept}"
