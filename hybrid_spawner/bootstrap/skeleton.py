"""Node side: a new home gets the image's starter files once, like /etc/skel (stdlib only, 3.9+).

``RemoteSpawner.home_skeleton`` names a directory on the node image (examples, a welcome
notebook). At the first start of a home (no ``.hybrid-skeleton`` mark in it) the node agent
copies what the home lacks, after the restore at start: a file already there, restored from the
bucket or the researcher's own, is never replaced. The mark is hidden, so never synced: a fresh
instance's home gets the files again, a persistent volume only once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MARK = ".hybrid-skeleton"


def populate_home(source: str, root: str) -> list:
    """Copy ``source``'s files missing from ``root`` (once per home); returns what was copied."""
    home, skeleton = Path(root), Path(source)
    if (home / MARK).exists() or not skeleton.is_dir():
        return []
    copied = []
    for path in sorted(skeleton.rglob("*")):
        relative = path.relative_to(skeleton)
        target = home / relative
        if path.is_symlink() or os.path.lexists(target):
            continue
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # the researcher's own file, not the image's mode bits
            copied.append(str(relative))
    (home / MARK).write_text(f"starter files copied from {skeleton}\n")
    return copied
