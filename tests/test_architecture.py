"""The house rules of docs/architecture.md, checked on the source itself.

- No import circle between files of ``engine/`` and ``behaviors/``, counting every import
  statement: module level, ``if TYPE_CHECKING:`` blocks and imports inside functions.
  (The direction of the layers is import-linter's contract in pyproject.toml, run by .ci/run.)
- Nothing outside ``engine/engine.py`` touches a private (``_x``) member of ``ProcessEngine``:
  the work modules, the bridge, the CLI and the tests go through its public methods or the
  command seam (``engine.runtime.commands``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "behaviors")
FACADE = ROOT / "engine" / "engine.py"


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module name an import statement anywhere in the file names (for ``from a
    import b``: both ``a`` and ``a.b``, since ``b`` may be a module)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of engine/ and behaviors/ it imports (itself excluded)."""
    modules = _modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolve(name) for name in _imported(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def private_members(facade: Path) -> set[str]:
    """The ``_x`` names ``ProcessEngine`` defines: methods, and attributes set on self."""
    tree = ast.parse(facade.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ProcessEngine")
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and isinstance(node.ctx, ast.Store)
        ):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(root: Path, private: set[str]) -> list[str]:
    """``file:line name`` for every access to one of ``private`` on something other than
    ``self`` (or ``cls``), and every ``getattr``/``setattr`` naming one, outside the facade."""
    found = []
    for folder in (*PACKAGES, "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.resolve() == (root / "engine" / "engine.py").resolve():
                continue
            rel = path.relative_to(root)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                ):
                    found.append(f"{rel}:{node.lineno} {node.attr}")
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                    and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in private
                ):
                    found.append(f"{rel}:{node.lineno} {node.args[1].value}")
    return found


# -- the rules ------------------------------------------------------------------------------


def test_no_import_circle_between_files_of_engine_and_behaviors() -> None:
    graph = import_graph(ROOT)
    assert "engine.runtime.commands" in graph and "behaviors.sync" in graph
    assert cycles(graph) == []


def test_nothing_outside_the_facade_touches_private_members_of_process_engine() -> None:
    private = private_members(FACADE)
    assert "_handlers" in private  # the scan reads the class it guards
    assert private_uses(ROOT, private) == []


# -- the checks catch what they are meant to ------------------------------------------------


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        (
            {"engine/a.py": "from engine import b\n", "engine/b.py": "import engine.a\n"},
            ["engine.a", "engine.b"],
        ),
        (
            {
                "engine/a.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from engine.b import Y\n"
                ),
                "engine/b.py": "from engine.a import X\n",
            },
            ["engine.a", "engine.b"],
        ),
        (
            {
                "engine/a.py": "def f():\n    from . import b\n    return b\n",
                "engine/b.py": "from engine import a\n",
            },
            ["engine.a", "engine.b"],
        ),
        (
            {
                "engine/pkg/__init__.py": "",
                "engine/pkg/sub.py": "from ..b import Y\n",
                "engine/b.py": "import engine.pkg.sub as s\n",
            },
            ["engine.b", "engine.pkg.sub"],
        ),
    ],
    ids=["module-level", "type-checking", "function-local-relative", "submodule"],
)
def test_a_circle_is_found_however_it_is_imported(
    tmp_path: Path, files: dict[str, str], circle: list[str]
) -> None:
    assert cycles(import_graph(_tree(tmp_path, files))) == [circle]


def test_a_longer_circle_through_behaviors_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/x.py": "import behaviors.y\n",
            "behaviors/y.py": "from engine.z import thing\n",
            "engine/z.py": "def thing():\n    from engine import x\n",
            "engine/free.py": "import engine.z\n",
        },
    )
    assert cycles(import_graph(root)) == [["behaviors.y", "engine.x", "engine.z"]]


def test_private_access_is_found_on_any_receiver_but_self(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/engine.py": (
                "class ProcessEngine:\n"
                "    def __init__(self):\n        self._handlers = {}\n"
                "    def _commit(self, run):\n        return self._handlers\n"
            ),
            "engine/work.py": (
                "class Runner:\n"
                "    def __init__(self, engine):\n        self.engine = engine\n"
                "    def _commit(self):\n        return self._commit\n"
                "    def go(self, run):\n        return self.engine._commit(run)\n"
            ),
            "tests/test_x.py": "def test(eng):\n    getattr(eng, '_handlers')\n",
        },
    )
    private = private_members(root / "engine" / "engine.py")
    assert private == {"_handlers", "_commit"}
    assert private_uses(root, private) == [
        "engine/work.py:7 _commit",
        "tests/test_x.py:2 _handlers",
    ]
