"""The node side runs on the Python of common node images (3.9+): checked statically here, since
this machine has only Python 3.11 (docs/node-image.md says what that does and does not prove).

Two checks on the node side's files (the node agent, the server extension and everything they
import of this distribution, found by following the imports):
- ``vermin --target=3.9-``: syntax (match, parenthesised context managers, ...), standard-library
  modules, functions and keyword arguments newer than 3.9;
- our own AST check for ``X | Y`` between types evaluated at runtime (``isinstance(x, int | str)``,
  a module-level alias ``Json = dict | list``), which vermin does not see because it needs types.
The hub side is checked the same way because ``requires-python`` covers the whole distribution.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hybrid_spawner", "voila_publisher")
# What a node imports: `python -m hybrid_spawner.node_agent`, the server extension (it loads its
# handler modules by name, so they are listed) and the `jupyter-hybrid-sync` command.
NODE_ENTRY_POINTS = (
    "hybrid_spawner/node_agent.py",
    "hybrid_spawner/bootstrap/node_agent.py",
    "voila_publisher/extension.py",
    "voila_publisher/sync/handlers.py",
    "voila_publisher/publish/handlers.py",
    "voila_publisher/notices/handlers.py",
    "voila_publisher/sync/cli.py",
)
TYPE_NAMES = {"int", "str", "bytes", "float", "bool", "dict", "list", "tuple", "set", "frozenset", "type", "object"}


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[Path]:
    found = set()
    package = path.relative_to(ROOT).parent.parts
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            modules = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for module in modules:
            if module.split(".")[0] in PACKAGES and (found_file := _module_file(module)):
                found.add(found_file)
    return found


def node_side_files() -> list[Path]:
    """The entry points, every module of ours they import, and the packages' __init__ files
    Python runs on the way (transitively)."""
    seen: set[Path] = set()
    todo = [ROOT / p for p in NODE_ENTRY_POINTS]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        parts = path.relative_to(ROOT).parts
        todo += [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))
                 if ROOT.joinpath(*parts[:i], "__init__.py").exists()]
        todo += _imports(path)
    return sorted(seen)


def runtime_union_types(source: str) -> list[int]:
    """Line numbers of ``A | B`` where an operand is a type (a builtin type name, None or a
    subscripted generic) and the expression is evaluated at runtime: everywhere but in
    annotations of a module with ``from __future__ import annotations``."""
    tree = ast.parse(source)
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                    for n in tree.body)
    skipped: set[int] = set()
    if postponed:
        for node in ast.walk(tree):
            annotations = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                annotations.append(node.returns)
                args = node.args
                annotations += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a]
            elif isinstance(node, ast.AnnAssign):
                annotations.append(node.annotation)
            for annotation in filter(None, annotations):
                skipped |= {id(n) for n in ast.walk(annotation)}

    def is_type(node) -> bool:
        return ((isinstance(node, ast.Constant) and node.value is None) or (isinstance(node, ast.Name) and node.id in TYPE_NAMES)
                or isinstance(node, ast.Subscript) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and
                                                       (is_type(node.left) or is_type(node.right))))

    return sorted({node.lineno for node in ast.walk(tree)
                   if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in skipped
                   and (is_type(node.left) or is_type(node.right))})


def test_the_union_check_finds_runtime_unions_and_ignores_postponed_annotations():
    assert runtime_union_types("def g(x):\n    return isinstance(x, int | str)\n") == [2]
    assert runtime_union_types("Json = dict | list | None\n") == [1]
    assert runtime_union_types("def f(x: int | None) -> str | None: ...\n") == [1]  # evaluated without the import
    assert runtime_union_types("from __future__ import annotations\ndef f(x: int | None) -> list[str] | None: ...\ny: int | None = 1\n") == []
    assert runtime_union_types("flags = re.I | re.M\nmask = a | b\n") == []


def test_the_node_side_is_found_by_following_imports():
    files = {p.relative_to(ROOT).as_posix() for p in node_side_files()}
    assert {"hybrid_spawner/bootstrap/node_agent.py", "voila_publisher/sync/s3/sigv4.py", "voila_publisher/publish/client.py",
            "voila_publisher/__init__.py", "hybrid_spawner/_version.py"} <= files
    # The node agent is stdlib only: nothing of the hub's side comes with it.
    assert not any(f.startswith(("hybrid_spawner/backends", "hybrid_spawner/spawner", "voila_publisher/host")) for f in files)


def _vermin(paths) -> subprocess.CompletedProcess:
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.exists():
        pytest.fail("vermin is not installed: pip install -e '.[test]'")
    return subprocess.run([str(vermin), "--target=3.9-", "--no-tips", "--violations", "--eval-annotations",
                           *map(str, paths)], capture_output=True, text=True, timeout=240)


def test_vermin_can_fail(tmp_path):
    """The check is live: a match statement and datetime.UTC are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import datetime\nz = datetime.UTC\nmatch z:\n    case _: pass\n")
    result = _vermin([bad])
    assert result.returncode != 0 and "datetime.UTC" in result.stdout + result.stderr


@pytest.mark.parametrize("side", ["node", "hub"])
def test_the_code_needs_no_python_newer_than_3_9(side):
    if side == "node":
        files = node_side_files()
    else:
        files = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    result = _vermin(files)
    assert result.returncode == 0, result.stdout + result.stderr
    unions = {p.relative_to(ROOT).as_posix(): lines for p in files if (lines := runtime_union_types(p.read_text()))}
    assert unions == {}, f"X | Y evaluated at runtime needs Python 3.10: {unions}"


def test_requires_python_matches_what_is_checked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.9"
