"""Layers import downward only: base (bitswarm/ minus the CLI) <- models <- hw <- search <- flows <- CLI.

The import graph is built from the AST of every module, imports inside functions included (they
hide circles just as well as top-level ones).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("bitswarm", "models", "hw", "search", "flows", "board_configs")
#: layer of a ``bitswarm.<first part>`` module; anything else under ``bitswarm/`` is the base layer
LAYERS = {"models": 1, "workflow": 1, "hw": 2, "search": 3, "flows": 4, "cli": 5, "commands": 5, "__main__": 5}
NAMES = {0: "base", 1: "models", 2: "hw", 3: "search", 4: "flows", 5: "CLI"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "bitswarm":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["bitswarm", *parts])


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute ``bitswarm`` import in the file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(ln, m) for ln, m in out if m == "bitswarm" or m.startswith("bitswarm.")]


def upward_imports(root: Path) -> list[str]:
    bad = []
    for top in PACKAGE_DIRS:
        for path in sorted((root / top).rglob("*.py")):
            mod = module_name(path, root)
            for line, target in imports(path):
                if target != "bitswarm" and layer(target) > layer(mod):
                    bad.append(f"{path.relative_to(root)}:{line}: {mod} ({NAMES[layer(mod)]}) imports "
                               f"{target} ({NAMES[layer(target)]})")
    return bad


def test_no_module_imports_a_higher_layer():
    assert upward_imports(ROOT) == []


def test_the_check_catches_an_upward_import_inside_a_function():
    fixture = Path(__file__).parent / "fixtures" / "layering"
    bad = upward_imports(fixture)
    assert bad == ["hw/cost_bad.py:5: bitswarm.hw.cost_bad (hw) imports bitswarm.flows.deploy (flows)"]


def environment_readers(root: Path) -> list[str]:
    """Library modules (below the CLI) that name ``read_environment``: the environment is read once, by
    the CLI, and passed down as a value."""
    bad = []
    for top in PACKAGE_DIRS:
        for path in sorted((root / top).rglob("*.py")):
            mod = module_name(path, root)
            if layer(mod) == 5 or mod == "bitswarm.env":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Name) and node.id == "read_environment" or \
                        isinstance(node, ast.alias) and node.name == "read_environment":
                    bad.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(set(bad))


def test_only_the_cli_reads_the_environment():
    assert environment_readers(ROOT) == []


def test_the_environment_check_catches_a_hidden_default(tmp_path):
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "cost_x.py").write_text(
        "def f(cache=None):\n    from bitswarm.env import read_environment\n"
        "    return cache or read_environment().cache_dir\n")
    assert environment_readers(tmp_path) == ["hw/cost_x.py:2", "hw/cost_x.py:3"]
