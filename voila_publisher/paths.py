"""One rule for paths a user names on the single-user server: they stay inside the root.

Sync, restore and publish all take paths from requests and must never read or write outside
the server's root directory, neither by ``..`` nor through a symlink. They all ask here.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path


class PathOutsideRoot(ValueError):
    """A requested path is absolute, climbs out with "..", or resolves outside the root."""


def is_within(real_root: str, real_path: str) -> bool:
    """Whether ``real_path`` is ``real_root`` or below it; both already resolved (realpath)."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def normalize_relpath(path: str) -> str:
    """A user-given path as a clean relative POSIX path ("" for the root), or PathOutsideRoot."""
    if not isinstance(path, str) or "\x00" in path:
        raise PathOutsideRoot(f"not a valid path: {path!r}")
    unified = path.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise PathOutsideRoot(f"path must be relative to the notebook root: {path!r}")
    clean = posixpath.normpath(unified) if unified else "."
    if clean == ".." or clean.startswith("../"):
        raise PathOutsideRoot(f"path leaves the notebook root: {path!r}")
    return "" if clean == "." else clean


def resolve_inside(root, path: str) -> tuple[str, Path]:
    """``(clean relative path, resolved absolute path)`` of ``path`` under ``root``, symlinks
    followed; PathOutsideRoot unless the result stays inside ``root``."""
    rel = normalize_relpath(path)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, rel)) if rel else real_root
    if not is_within(real_root, target):
        raise PathOutsideRoot(f"path leaves the notebook root: {path!r}")
    return rel, Path(target)
