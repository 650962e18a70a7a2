"""The local side of a sync: which files under the notebook root take part, and their stat.

Never follows a symlink whose target lies outside the root, and never lets a user-supplied
path escape the root.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from voila_publisher.paths import PathOutsideRoot, is_within, resolve_inside


@dataclass(frozen=True)
class LocalFile:
    """What the stat of a file says about its content, without reading it.

    Size and mtime alone are not enough: ``tar -x``, ``cp -p``, ``rsync -t`` and ``touch -r``
    set the mtime back, so a same-size edit can keep both. The change time and the inode
    number cannot be set back by a user (a write, a rename over the file or a restored mtime
    all move the change time), so, as in git's index, a file whose four values are all
    unchanged is taken as unchanged, and any other is hashed.
    """

    size: int
    mtime_ns: int
    ctime_ns: int = 0
    ino: int = 0

    @classmethod
    def of(cls, st: os.stat_result) -> "LocalFile":
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass
class LocalListing:
    files: dict[str, LocalFile] = field(default_factory=dict)
    # (relative path, message) for directories or files that could not be read; a listing with
    # errors is incomplete, so nothing may be deleted remotely on its account.
    errors: list[tuple[str, str]] = field(default_factory=list)


def is_excluded(relpath: str, patterns: list[str]) -> bool:
    """True when any component of ``relpath`` (or the whole path) matches a glob pattern."""
    parts = relpath.split("/")
    for pattern in patterns:
        if "/" in pattern:
            if fnmatchcase(relpath, pattern) or fnmatchcase(relpath, pattern.rstrip("/") + "/*"):
                return True
        elif any(fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def resolve_selection(root: Path, paths: list[str] | None) -> list[str] | None:
    """Validate the paths a request names; None means the whole tree.

    Symlinks are resolved too, so a link that points outside the root is refused here.
    """
    if paths is None:
        return None
    if not isinstance(paths, list):
        raise PathOutsideRoot("paths must be a list of relative paths")
    selection = []
    for path in paths:
        rel, _ = resolve_inside(root, path)
        if rel == "":
            return None
        selection.append(rel)
    return selection


def in_selection(relpath: str, selection: list[str] | None) -> bool:
    if selection is None:
        return True
    return any(relpath == s or relpath.startswith(s + "/") for s in selection)


def list_local(root, excludes: list[str], selection: list[str] | None = None) -> LocalListing:
    """Every regular file under ``root`` that is not excluded (and lies in ``selection``)."""
    root = Path(root)
    real_root = os.path.realpath(root)
    listing = LocalListing()
    seen_dirs = {real_root}
    starts = [""] if selection is None else selection

    def walk(rel_dir: str) -> None:
        abs_dir = os.path.join(root, rel_dir) if rel_dir else str(root)
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as e:
            listing.errors.append((rel_dir or ".", e.strerror or str(e)))
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            visit(rel, entry)

    def visit(rel: str, entry: os.DirEntry | None) -> None:
        if is_excluded(rel, excludes):
            return
        path = os.path.join(root, rel)
        try:
            is_link = entry.is_symlink() if entry is not None else os.path.islink(path)
            if is_link:
                real = os.path.realpath(path)
                if not is_within(real_root, real):
                    return  # never follow a link out of the root
                st = os.stat(real)
            else:
                st = entry.stat(follow_symlinks=False) if entry is not None else os.lstat(path)
        except OSError as e:
            if entry is not None or os.path.lexists(path):
                listing.errors.append((rel, e.strerror or str(e)))
            return
        if stat_mod.S_ISDIR(st.st_mode):
            real_dir = os.path.realpath(path)
            if real_dir in seen_dirs:
                return  # a link back into a directory already walked
            seen_dirs.add(real_dir)
            walk(rel)
        elif stat_mod.S_ISREG(st.st_mode):
            listing.files[rel] = LocalFile.of(st)

    for start in starts:
        if start == "":
            walk("")
        else:
            visit(start, None)
    return listing
