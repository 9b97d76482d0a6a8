"""The house holds: rooms whose imports only point down, no circle (type-only imports included),
commands at the top and nothing else there, one registry each for commands, kinds and label
formats, the checkpoint's raw section read in one module, kinds never compared by name outside
their package, and every module named in the architecture page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import fishbear
from fishbear.cli import COMMANDS
from fishbear.formats import FORMATS
from fishbear.kinds import KINDS, Kind, get_kind, kind_of_task

from .conftest import REPO

PACKAGE = Path(fishbear.__file__).parent
# A room may import its own modules and rooms of a lower layer, never a higher one (nor a room of its
# own layer: siblings stay independent). The commands (top-level modules) are the top layer.
LAYERS: dict[str, int] = {
    "core": 0, "conf": 0,                     # helpers below everything: errors, atomic files, geometry...
    "data": 1, "models": 1, "reports": 1,     # files to catalogs and batches; networks; figures and tables
    "formats": 2, "training": 2,              # label formats (readers, writers); optimisers and callbacks
    "kinds": 3,                               # the task kinds, their Lightning base and the model's meta
    "engine": 4,                              # what the commands share: data module, experiment, checkpoints
}
TOP = 5


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(type_only: bool = True) -> dict[str, set[str]]:
    """Module -> the fishbear modules it imports, anywhere in its body (imports inside functions
    and under ``TYPE_CHECKING`` included: a cycle through either is still a cycle)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
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


def room(module: str) -> str:
    """``fishbear.engine.experiment`` -> ``engine``; a top-level module (a command) -> ``top``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def level(module: str) -> int:
    return -1 if module == "fishbear" else LAYERS.get(room(module), TOP)


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


def test_fishbear_imports_have_no_cycle_type_only_ones_included():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_only_point_down():
    wrong = [f"{source} -> {target}" for source, targets in import_graph().items() for target in sorted(targets)
             if room(source) != room(target) and level(target) >= level(source)]
    assert not wrong, wrong


WINGS = ("adapt", "deploy", "review", "search")  # engine/'s wings; the run's modules stand at engine/'s root


def wing(module: str) -> str | None:
    """``fishbear.engine.review.log`` -> ``review``; the run's modules (``fishbear.engine.datamodule``) -> None."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "engine" else None


def test_a_wing_imports_only_down_and_never_a_sibling_wing():
    """engine/'s root holds the run (data module, experiment, checkpoints, inference); a wing builds on
    it and on the rooms below, never on another wing; the root never reaches into a wing."""
    graph = import_graph()
    wings = {p.name for p in (PACKAGE / "engine").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert wings == set(WINGS), wings
    wrong = [f"{source} -> {target}" for source, targets in graph.items() if room(source) == "engine"
             for target in sorted(targets) if room(target) == "engine" and wing(target) not in (None, wing(source))]
    assert not wrong, wrong
    assert wing("fishbear.engine.review.log") == "review" and wing("fishbear.engine.datamodule") is None


def test_every_module_lives_in_a_room_or_is_a_command():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "cli"))
    assert top == sorted(COMMANDS), "a top-level module that is no command, or a command that is no module"
    rooms = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert rooms == sorted(LAYERS), rooms
    for command in COMMANDS.values():
        module = __import__(command.module, fromlist=["cli"])
        assert callable(module.cli), command.name


def test_no_command_imports_another():
    graph = import_graph()
    commands = {c.module for c in COMMANDS.values()}
    users = {name: sorted(edges & commands) for name, edges in graph.items() if edges & commands}
    assert not users, users


def _raw_meta_reads(tree: ast.AST) -> list[int]:
    """Lines that index or ``.get`` a checkpoint's ``"fishbear"`` section."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "fishbear":
            lines.append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop")
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "fishbear"):
            lines.append(node.lineno)
    return lines


def test_the_checkpoints_raw_section_is_read_in_one_module():
    found = {str(p.relative_to(PACKAGE)): lines for p in PACKAGE.rglob("*.py")
             if p != PACKAGE / "kinds" / "meta.py" and (lines := _raw_meta_reads(ast.parse(p.read_text())))}
    assert not found, found
    assert _raw_meta_reads(ast.parse('m = checkpoint["fishbear"]\nn = checkpoint.get("fishbear", {})')) == [1, 2]


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


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_task_config_states_its_kinds_setting_defaults(name):
    """The task config's value of each kind setting is the settings type's one default."""
    import dataclasses

    config = yaml.safe_load((PACKAGE / "conf" / "task" / f"{name}.yaml").read_text())
    settings = KINDS[name].settings_type()
    aliases = {"regress_loss": "loss"}  # the task's argument that sets it
    for field in dataclasses.fields(settings):
        key = aliases.get(field.name, field.name)
        if key in config:
            assert config[key] == getattr(settings, field.name), (name, key)


def test_every_label_format_has_its_reader_config_and_nothing_else_does():
    folder = PACKAGE / "conf" / "data" / "reader"
    configs = {p.stem: yaml.safe_load(p.read_text())["_target_"] for p in folder.glob("*.yaml")}
    assert set(configs) == set(FORMATS)
    for name, fmt in FORMATS.items():
        assert configs[name] == f"{fmt.reader.__module__}.{fmt.reader.__qualname__}", name
        assert fmt.kind in KINDS


def test_the_pure_parts_import_no_lightning():
    import subprocess
    import sys

    code = ("import sys, fishbear.kinds, fishbear.engine.inference, fishbear.engine.checkpoint; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_architecture_page_names_every_module():
    page = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"[\w/]+\.py", page))

    def is_named(relative: Path) -> bool:  # by its path in the package, or the end of it (the tree's indentation)
        return any("/".join(relative.parts[i:]) in named for i in range(len(relative.parts)))

    missing = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if "__pycache__" not in p.parts and p.name != "__init__.py" and not is_named(p.relative_to(PACKAGE)))
    assert not missing, f"docs/architecture.md does not name {missing}"


MODULE_LINES, FUNCTION_LINES, COMMAND_FUNCTION_LINES = 350, 80, 60


def _function_lengths(path: Path) -> dict[str, int]:
    return {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_no_module_is_too_long_to_read_and_no_function_either():
    """A module past 350 lines holds two jobs; a function past 80 lines (60 in a command, which
    composes and calls) holds a policy that belongs in a module of its own."""
    long_modules = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
                    if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert not long_modules, long_modules
    commands = {PACKAGE / f"{c.module.rsplit('.', 1)[-1]}.py" for c in COMMANDS.values()}
    long_functions = {f"{p.relative_to(PACKAGE)}:{name}": n for p in PACKAGE.rglob("*.py")
                      for name, n in _function_lengths(p).items()
                      if n > (COMMAND_FUNCTION_LINES if p in commands else FUNCTION_LINES)}
    assert not long_functions, long_functions


def test_the_length_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert _function_lengths(tmp_path / "m.py") == {"long": 91, "short": 2}
