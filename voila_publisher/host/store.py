"""Atomic, versioned storage of published dashboards on the public host.

Layout under the dashboards directory (the directory Voila serves)::

    {owner}/{slug}/v000007/{slug}.ipynb     one immutable directory per published version
    {owner}/{slug}/v000007/<data files>     (small files the notebook declared)
    {owner}/{slug}/v000007/.dashboard.json  title, version, publication time
    {owner}/{slug}/current -> v000007       symlink, swapped with one rename

A version is written completely in a temporary directory, renamed into place, and only then
does ``current`` move to it (a new symlink renamed over the old one), so a reader sees either
the previous version or the new one, never a mix. Because every version has a path of its
own, nothing keyed by notebook path (Voila's kernels, pre-rendered pools, caches) can ever
serve the old content under the new version's path.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from voila_publisher.notebooks import check_data_file_name, check_owner, check_slug

CURRENT = "current"
PUBLIC = "public"
UNLISTED = "unlisted"
VISIBILITIES = (PUBLIC, UNLISTED)
_LINK_KEY = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
META = ".dashboard.json"
_VERSION_DIR = re.compile(r"^v(\d{6,})$")


@dataclass(frozen=True)
class StoredDashboard:
    owner: str
    slug: str
    title: str
    version: int
    published: str  # ISO 8601, UTC
    notebook: str  # path of the notebook relative to the dashboards directory
    source_path: str = ""  # where the notebook lives on the owner's server (shown to the owner only)
    visibility: str = PUBLIC  # PUBLIC: in the gallery; UNLISTED: only through /unlisted/{link_key}/
    link_key: str = ""  # the unlisted link's secret (shown to the owner only)
    description: str = ""  # a line or two for the gallery card

    @property
    def unlisted(self) -> bool:
        return self.visibility == UNLISTED

    def to_json(self) -> dict:
        return asdict(self)


def version_dir_name(version: int) -> str:
    return f"v{version:06d}"


def is_version_dir(root, path) -> bool:
    """True when ``path`` (symlinks resolved) is one dashboard version's directory,
    ``{owner}/{slug}/vNNNNNN`` right under ``root``: the only place a dashboard kernel may run."""
    root, path = Path(root).resolve(), Path(path).resolve()
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    return len(parts) == 3 and _VERSION_DIR.match(parts[2]) is not None


class DashboardStore:
    """``versions_kept`` versions per dashboard stay on disk; a version beyond that count is
    deleted only once it has been replaced for ``grace_seconds``, because a viewer routed to
    it just before a republish still needs its files (the page, the kernel's data files)."""

    def __init__(self, root, versions_kept: int = 3, grace_seconds: float = 300.0, static_root=None):
        """``static_root``: where the static pages of versions that need no live kernel go
        (``{owner}/{slug}/v000007.html``); a tree of its own, so the web server reads pages
        without reading the notebooks and data files."""
        if versions_kept < 1:
            raise ValueError("versions_kept must be at least 1 (the current version)")
        self.root = Path(root)
        self.static_root = Path(static_root) if static_root else None
        self.versions_kept = versions_kept
        self.grace_seconds = grace_seconds
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.static_root:
            self.static_root.mkdir(parents=True, exist_ok=True)

    # -- paths -----------------------------------------------------------------------------
    def _dashboard_dir(self, owner: str, slug: str) -> Path:
        return self.root / check_owner(owner) / check_slug(slug)

    def _lock(self, owner: str, slug: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((owner, slug), threading.Lock())

    @staticmethod
    def _versions(directory: Path) -> list[int]:
        found = []
        with os.scandir(directory) as entries:
            for entry in entries:
                m = _VERSION_DIR.match(entry.name)
                if m and entry.is_dir(follow_symlinks=False):
                    found.append(int(m.group(1)))
        return sorted(found)

    # -- reading ---------------------------------------------------------------------------
    def get(self, owner: str, slug: str) -> StoredDashboard | None:
        """The current version of a dashboard, or None if it is not published."""
        directory = self._dashboard_dir(owner, slug)
        try:
            target = os.readlink(directory / CURRENT)
            meta = json.loads((directory / target / META).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        return StoredDashboard(**meta)

    def find_unlisted(self, link_key: str) -> StoredDashboard | None:
        """The unlisted dashboard whose current link is ``link_key``, or None (revoked, unknown)."""
        if not _LINK_KEY.match(link_key or ""):
            return None
        for record in self.list():
            if record.unlisted and secrets.compare_digest(record.link_key, link_key):
                return record
        return None

    def list(self, owner: str | None = None) -> list[StoredDashboard]:
        """Every published dashboard (of ``owner`` if given), newest publication first; unlisted
        ones included (callers decide who may see them)."""
        found = []
        owners = [owner] if owner else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        for o in owners:
            owner_dir = self.root / check_owner(o)
            if not owner_dir.is_dir():
                continue
            for slug_dir in sorted(owner_dir.iterdir()):
                if slug_dir.name.startswith(".") or not slug_dir.is_dir():
                    continue
                dashboard = self.get(o, slug_dir.name)
                if dashboard is not None:
                    found.append(dashboard)
        return sorted(found, key=lambda d: d.published, reverse=True)

    def versions(self, owner: str, slug: str) -> list[int]:
        directory = self._dashboard_dir(owner, slug)
        return self._versions(directory) if directory.is_dir() else []

    def version_records(self, owner: str, slug: str) -> list[StoredDashboard]:
        """Every version still on disk (the ones a rollback can return to), oldest first."""
        directory = self._dashboard_dir(owner, slug)
        found = []
        for version in self.versions(owner, slug):
            try:
                found.append(StoredDashboard(**json.loads((directory / version_dir_name(version) / META).read_text())))
            except (FileNotFoundError, json.JSONDecodeError, TypeError):
                continue  # pruned meanwhile, or not a complete version
        return found

    def rollback(self, owner: str, slug: str, version: int) -> StoredDashboard:
        """Publish the content of an earlier ``version`` again, as a new version (history only
        grows: what was current stays on disk and can be returned to). The dashboard keeps its
        current visibility and link. KeyError if that version is not on disk any more."""
        current = self.get(owner, slug)
        source = self._dashboard_dir(owner, slug) / version_dir_name(version)
        try:
            old = StoredDashboard(**json.loads((source / META).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            raise KeyError(version) from None
        if current is None:
            raise KeyError(version)
        notebook_name = f"{slug}.ipynb"
        notebook = (source / notebook_name).read_bytes()
        files = {}
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and relative not in (notebook_name, META):
                files[relative] = path.read_bytes()
        return self.publish(
            owner, slug, notebook, old.title, files, current.source_path, current.visibility, False, old.description
        )

    # -- static pages ----------------------------------------------------------------------
    def _static_dir(self, owner: str, slug: str) -> Path | None:
        return self.static_root / check_owner(owner) / check_slug(slug) if self.static_root else None

    def static_page(self, owner: str, slug: str, version: int) -> str | None:
        """The static page of this version, relative to ``static_root``, or None (render live)."""
        directory = self._static_dir(owner, slug)
        if directory is None:
            return None
        name = f"{version_dir_name(version)}.html"
        return f"{owner}/{slug}/{name}" if (directory / name).is_file() else None

    def save_static_page(self, owner: str, slug: str, version: int, html: bytes) -> bool:
        """Store the page rendered for ``version``, atomically; False if that version is gone
        meanwhile (replaced and pruned, or unpublished), so no page outlives its dashboard."""
        return self._save_beside_version(owner, slug, version, f"{version_dir_name(version)}.html", html)

    def thumbnail(self, owner: str, slug: str, version: int) -> str | None:
        """The thumbnail of this version, relative to ``static_root``, or None."""
        directory = self._static_dir(owner, slug)
        name = f"{version_dir_name(version)}.png"
        return f"{owner}/{slug}/{name}" if directory is not None and (directory / name).is_file() else None

    def save_thumbnail(self, owner: str, slug: str, version: int, png: bytes) -> bool:
        """Keep a PNG (the dashboard's first image) for the gallery card; False if not a PNG or
        the version is gone."""
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            return False
        return self._save_beside_version(owner, slug, version, f"{version_dir_name(version)}.png", png)

    def _save_beside_version(self, owner: str, slug: str, version: int, name: str, data: bytes) -> bool:
        directory = self._static_dir(owner, slug)
        if directory is None:
            return False
        with self._lock(owner, slug):
            if not (self._dashboard_dir(owner, slug) / version_dir_name(version)).is_dir():
                return False
            directory.mkdir(parents=True, exist_ok=True)
            staging = directory / f".staging-{uuid.uuid4().hex}"
            _write_durably(staging, data)
            os.replace(staging, directory / name)
            return True

    def _drop_static_pages(self, owner: str, slug: str, keep: set[int] | None = None) -> None:
        directory = self._static_dir(owner, slug)
        if directory is None or not directory.is_dir():
            return
        for page in directory.iterdir():
            m = _VERSION_DIR.match(page.stem)
            if page.suffix in (".html", ".png") and (keep is None or (m and int(m.group(1)) not in keep)):
                page.unlink(missing_ok=True)
        if keep is None:
            shutil.rmtree(directory, ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self, owner: str, slug: str, notebook: bytes, title: str, files: dict[str, bytes] | None = None, source_path: str = "",
        visibility: str = PUBLIC, new_link: bool = False, description: str = "",
    ) -> StoredDashboard:
        """Store a new version and make it current atomically; returns it.

        An unlisted dashboard keeps its link across versions unless ``new_link`` asks for a new
        one (which revokes the old link at the moment the new version becomes current)."""
        if visibility not in VISIBILITIES:
            raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
        files = {check_data_file_name(name): data for name, data in (files or {}).items()}
        directory = self._dashboard_dir(owner, slug)
        notebook_name = f"{slug}.ipynb"
        if notebook_name in files:
            raise ValueError(f"a data file may not be called {notebook_name}")
        with self._lock(owner, slug):
            directory.mkdir(parents=True, exist_ok=True)
            existing = self._versions(directory)
            version = (existing[-1] + 1) if existing else 1
            previous = self.get(owner, slug)
            link_key = ""
            if visibility == UNLISTED:
                keep = previous is not None and previous.unlisted and previous.link_key and not new_link
                link_key = previous.link_key if keep else secrets.token_urlsafe(32)
            final = directory / version_dir_name(version)
            staging = directory / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                record = StoredDashboard(
                    owner=owner,
                    slug=slug,
                    title=title,
                    version=version,
                    published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    notebook=f"{owner}/{slug}/{final.name}/{notebook_name}",
                    source_path=source_path,
                    visibility=visibility,
                    link_key=link_key,
                    description=description,
                )
                _write_durably(staging / notebook_name, notebook)
                for name, data in files.items():
                    target = staging / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _write_durably(target, data)
                _write_durably(staging / META, json.dumps(record.to_json()).encode())
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._point_current(directory, final.name)
            self._prune(directory)
            return record

    def unpublish(self, owner: str, slug: str) -> bool:
        """Remove a dashboard and all its versions; False if it was not published."""
        directory = self._dashboard_dir(owner, slug)
        with self._lock(owner, slug):
            if not directory.is_dir():
                return False
            # One rename takes the dashboard away for every reader at once; the slow
            # recursive delete then happens out of sight.
            doomed = directory.parent / f".deleted-{slug}-{uuid.uuid4().hex}"
            os.rename(directory, doomed)
            self._drop_static_pages(owner, slug)
            shutil.rmtree(doomed, ignore_errors=True)
            return True

    @staticmethod
    def _point_current(directory: Path, version_name: str) -> None:
        link = directory / f".current-{uuid.uuid4().hex}"
        os.symlink(version_name, link)
        os.replace(link, directory / CURRENT)

    def prune(self) -> int:
        """Delete every version past its grace period (run periodically); returns how many."""
        removed = 0
        for owner_dir in [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]:
            for slug_dir in [p for p in owner_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]:
                with self._lock(owner_dir.name, slug_dir.name):
                    if slug_dir.is_dir():
                        removed += self._prune(slug_dir)
        return removed

    def _prune(self, directory: Path) -> int:
        versions = self._versions(directory)
        now = time.time()
        removed = 0
        # versions[i + 1] replaced versions[i]; its directory's mtime says when.
        for older, successor in zip(versions[: -self.versions_kept], versions[1:]):
            replaced_at = (directory / version_dir_name(successor)).stat().st_mtime
            if now - replaced_at >= self.grace_seconds:
                shutil.rmtree(directory / version_dir_name(older), ignore_errors=True)
                removed += 1
        if removed:
            self._drop_static_pages(directory.parent.name, directory.name, keep=set(self._versions(directory)))
        return removed


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
