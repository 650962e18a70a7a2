"""Every option of the project's Configurable classes is named in docs/ (docs/reference.md or a topic page).

An option counts as documented when a page names it with its class, as ``Class.option`` (or
``c.Class.option``), the class being the one that defines it or a project subclass: a bare
``port`` somewhere in a code block proves nothing. A new option fails this test until a page
names it; the message lists each one with the file that defines it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tests.fixtures.configurables import own_options, project_configurables

DOCS = Path(__file__).resolve().parents[2] / "docs"


def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("**/*.md")))


def undocumented(text: str) -> list[str]:
    classes = project_configurables()
    missing = []
    for cls in classes:
        names = [c.__name__ for c in classes if issubclass(c, cls)]  # cls itself included
        for option in sorted(own_options(cls)):
            pattern = r"\b(?:%s)\.%s\b" % ("|".join(map(re.escape, names)), re.escape(option))
            if not re.search(pattern, text):
                source = Path(inspect.getsourcefile(cls)).relative_to(DOCS.parent)
                missing.append(f"{cls.__name__}.{option} (defined in {source})")
    return missing


def test_every_option_is_named_in_the_docs():
    missing = undocumented(docs_text())
    assert not missing, (
        f"{len(missing)} option(s) are not named in docs/ as Class.option; document each in "
        "docs/reference.md or its topic page:\n  " + "\n  ".join(missing)
    )


def test_the_check_finds_an_undocumented_option():
    # The check itself can fail: with the docs' text stripped of one option it names that option.
    text = docs_text()
    assert "BucketSync.region" in text
    stripped = re.sub(r"\bBucketSync\.region\b", "", text)
    assert any(m.startswith("BucketSync.region ") for m in undocumented(stripped))
