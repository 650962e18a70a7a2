"""What may be published: notebook validation, hidden-cell stripping, names and titles.

Pure functions shared by the single-user client and the public host, so both sides apply
the same rules (the host never trusts the client to have applied them).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import unicodedata
import warnings

import nbformat
from nbformat.v4.rwbase import rejoin_lines

# Owners are JupyterHub user names; slugs come from file names. Both end up as directory
# names on the public host and as URL path segments, so both are held to a strict pattern:
# no separators, no dot-only names, nothing that starts with "." or "_" (reserved for the
# host's own files and the "_voila" route).
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
SLUG_MAX = 80
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
# Where a notebook lists the small data files it reads (paths relative to the notebook).
DATA_FILES_METADATA = ("voila_publisher", "data_files")
_DATA_PART = re.compile(r"^[A-Za-z0-9._@+ -]+$")
DEFAULT_HIDDEN_TAGS = ("hide", "remove-cell", "remove_cell", "voila-hide")


class InvalidNotebook(ValueError):
    """The upload is not a valid Jupyter notebook (the message says why, for the user)."""


class InvalidName(ValueError):
    """An owner, slug or data-file name that could escape its directory or break a URL."""


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not OWNER_PATTERN.match(owner) or ".." in owner:
        raise InvalidName(f"invalid owner name {owner!r}: use letters, digits and . _ @ + - (at most 64)")
    return owner


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise InvalidName(f"invalid dashboard name {slug!r}: use lower-case letters, digits and - (at most 80)")
    return slug


def slug_from_path(path: str) -> str:
    """The dashboard name of a notebook, from its file name; the only place it is computed
    (the Lab asks the server, see ``GET /hybrid/publish/_slug``).

    ``Sales Q3 (final).ipynb`` -> ``sales-q3-final``; accents fold to their letter
    (``Übersicht`` -> ``ubersicht``). When folding drops letters that have no ASCII form (CJK,
    Cyrillic, emoji) or the name is cut at 80 characters, a short hash of the whole name is
    appended, so that two such names never share a dashboard: ``数据 2024`` -> ``2024-…``,
    ``数据`` -> ``n-…``. A name with nothing but punctuation is refused.
    """
    stem = posixpath.basename(path.replace("\\", "/"))
    if stem.lower().endswith(".ipynb"):
        stem = stem[: -len(".ipynb")]
    stem = unicodedata.normalize("NFC", stem)
    folded = unicodedata.normalize("NFKD", stem)
    ascii_stem = folded.encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_stem.lower()).strip("-")
    lost_letters = any(unicodedata.category(ch)[0] in "LN" and ord(ch) > 127 and not unicodedata.combining(ch) for ch in folded)
    if not slug and not lost_letters:
        raise InvalidName(f"cannot make a dashboard name from {path!r}: the file name has no letters or digits")
    if lost_letters or len(slug) > SLUG_MAX:
        digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
        slug = f"{slug[: SLUG_MAX - 9].strip('-') or 'n'}-{digest}"
    return slug


def check_data_file_name(name: str) -> str:
    """A data file path relative to the notebook: no absolute paths, no "..", no hidden parts."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        raise InvalidName(f"invalid data file name {name!r}")
    parts = name.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or not _DATA_PART.match(p) for p in parts) or len(name) > 255:
        raise InvalidName(f"invalid data file name {name!r}: use a relative path of letters, digits and . _ @ + - (no '..', no hidden parts)")
    return name


def parse_notebook(raw: bytes) -> nbformat.NotebookNode:
    """Parse and validate notebook bytes (nbformat 4); raises :class:`InvalidNotebook`."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidNotebook(f"not a notebook: the file is not JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise InvalidNotebook("not a notebook: JSON without 'cells' and 'nbformat'")
    if data.get("nbformat") != 4:
        raise InvalidNotebook(f"unsupported notebook format {data.get('nbformat')!r}: only nbformat 4 can be published")
    try:
        # Sources may be stored as lists of lines; work on joined strings from here on.
        nb = rejoin_lines(nbformat.from_dict(data))
        with warnings.catch_warnings():
            # Cells without ids (nbformat < 4.5 writers) are valid; Voila copes with them.
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
    except nbformat.ValidationError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else "schema violation"
        raise InvalidNotebook(f"invalid notebook: {first_line[:300]}") from None
    return nb


def declared_data_files(nb) -> list[str]:
    """The data files a notebook declares in ``metadata.voila_publisher.data_files``, checked."""
    section = nb.get("metadata", {}).get(DATA_FILES_METADATA[0], {}) or {}
    names = section.get(DATA_FILES_METADATA[1], []) or []
    if not isinstance(names, list):
        raise InvalidNotebook("metadata.voila_publisher.data_files must be a list of relative paths")
    return [check_data_file_name(n) for n in names]


def strip_hidden_cells(nb, tags) -> int:
    """Remove (in place) every cell carrying one of ``tags``; returns how many were removed.

    Removed cells never reach the public host, so they are not executed there either.
    """
    wanted = set(tags)
    kept = [c for c in nb.cells if not wanted.intersection(c.get("metadata", {}).get("tags", []) or [])]
    removed = len(nb.cells) - len(kept)
    nb.cells = kept
    return removed


def clear_outputs(nb) -> None:
    """Drop stored outputs: Voila re-executes on the host, and stored outputs may hold data."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def notebook_title(nb, fallback: str) -> str:
    """The notebook's title: metadata.title, else its first Markdown heading, else ``fallback``."""
    title = nb.get("metadata", {}).get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()[:200]
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in str(cell.get("source", "")).splitlines():
            m = re.match(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", line)
            if m:
                return m.group(1)[:200]
    return fallback


def notebook_description(nb, limit: int = 280) -> str:
    """What a gallery card says of the dashboard: metadata.description, else the first paragraph
    of prose in the Markdown cells (headings, images and HTML skipped), plain text, at most
    ``limit`` characters."""
    described = nb.get("metadata", {}).get("description")
    if isinstance(described, str) and described.strip():
        return _shorten(described, limit)
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        paragraph = []
        for line in str(cell.get("source", "")).splitlines() + [""]:
            text = line.strip()
            if text and not re.match(r"^(#|!\[|<|```|---|\|)", text):
                paragraph.append(text)
            elif paragraph:
                return _shorten(" ".join(paragraph), limit)
    return ""


def _shorten(text: str, limit: int) -> str:
    # Markdown links and emphasis read as plain text on a card.
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(text.split()))
    text = re.sub(r"[*_`]+", "", text)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def serialize(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")
