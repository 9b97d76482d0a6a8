"""The seams hold: every kind provides every part, fishbear's imports have no cycle, kinds are
never compared by name outside ``fishbear/kinds/``, and no entry point imports another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fishbear
from fishbear.kinds import KINDS, Kind, get_kind, kind_of_task

PACKAGE = Path(fishbear.__file__).parent
ENTRY_POINTS = {"fishbear.train", "fishbear.evaluate", "fishbear.lr_find", "fishbear.predict", "fishbear.frames",
                "fishbear.doctor"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph() -> dict[str, set[str]]:
    """Module -> the fishbear modules it imports, anywhere in its body (imports inside functions
    included: a cycle through a deferred import is still a cycle), ``TYPE_CHECKING`` left out."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_fishbear_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_entry_point_imports_another():
    graph = import_graph()
    for entry in ENTRY_POINTS:
        assert not graph[entry] & ENTRY_POINTS, (entry, graph[entry] & ENTRY_POINTS)
    users = [name for name, edges in graph.items() if name not in ENTRY_POINTS and edges & ENTRY_POINTS]
    assert not users, users


def _kind_name_comparisons(tree: ast.AST) -> list[int]:
    """Line numbers of ``==``/``!=``/``in`` comparisons with a kind's name, and of dict literals
    keyed by kind names (a registry kept outside the one registry)."""
    names = set(KINDS)

    def named(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and node.value in names:
            return True
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(named(e) for e in node.elts)

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(named(part) for part in (node.left, *node.comparators)):
            lines.append(node.lineno)
        if isinstance(node, ast.Dict) and sum(named(key) for key in node.keys if key is not None) >= 2:
            lines.append(node.lineno)
    return lines


def test_no_kind_is_compared_by_name_outside_the_kinds_package():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "kinds") in path.parents:
            continue
        lines = _kind_name_comparisons(ast.parse(path.read_text()))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert not found, found


def test_the_name_check_sees_a_comparison():
    assert _kind_name_comparisons(ast.parse("if kind == 'detect': pass")) == [1]
    assert _kind_name_comparisons(ast.parse("ok = kind in ('classify', 'detect')")) == [1]
    assert _kind_name_comparisons(ast.parse("x = {'segment': 1, 'points': 2}")) == [1]
    assert _kind_name_comparisons(ast.parse("catalog = Catalog(kind='segment')")) == []


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_provides_every_part(name):
    kind = KINDS[name]
    assert isinstance(kind, Kind) and kind.name == name and get_kind(name) is kind
    task = kind.task_class()
    assert task.kind is kind and kind_of_task(f"{task.__module__}.{task.__qualname__}") is kind
    config = PACKAGE / "conf" / "task" / f"{name}.yaml"
    assert config.is_file() and f"_target_: {task.__module__}.{task.__qualname__}" in config.read_text()
    report = __import__(f"{kind.package}.report", fromlist=["section", "markdown"])
    assert callable(report.section) and callable(report.markdown)
    assert kind.output in ("vector", "dense", "boxes") and kind.eval_resize in ("crop", "squish")
    for method in ("write_shapes", "interpret"):  # every kind has an embedded dataset and a reading
        assert getattr(type(kind), method) is not getattr(Kind, method), (name, method)
    if kind.written_files is not None:
        assert type(kind).output_writer is not Kind.output_writer
    embedded = [p for p in (PACKAGE / "conf" / "data").glob("shapes*.yaml") if f"task: {name}" in p.read_text()]
    assert embedded, f"no embedded shapes data config chooses task {name}"


def test_the_pure_parts_import_no_lightning():
    import subprocess
    import sys

    code = ("import sys, fishbear.kinds, fishbear.engine.inference, fishbear.engine.checkpoint; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
