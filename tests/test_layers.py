"""The package's imports run one way: cli -> api -> (training, generation, evaluation, ...) ->
config -> (models, losses, observables, data, metrics) -> divergences -> (errors, registry,
...), without cycles, without the package root below the API, and without another module's
private names."""

import ast
import importlib.util
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "physgan"

# The layer of each top-level module or subpackage: a module imports its own layer or lower ones.
LAYERS = {
    0: {"version", "errors", "registry", "atomic", "progress", "pretrained"},
    1: {"divergences", "settle"},
    2: {"models", "losses", "observables", "image_ratio", "data", "metrics", "theory"},
    3: {"config"},
    4: {
        "sampling",
        "truncation",
        "training",
        "generation",
        "evaluation",
        "comparison",
        "report",
        "export",
    },
    5: {"fastsim", "theory_demo"},
    6: {"api"},
    7: {"cli", "__main__"},
}
LAYER = {name: rank for rank, names in LAYERS.items() for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    return (SRC.parent / Path(*name.split("."))).with_suffix(".py").is_file() or (
        SRC.parent / Path(*name.split(".")) / "__init__.py"
    ).is_file()


def _imports(path: Path) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, names taken from it) for every physgan import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, []) for a in node.names if a.name.startswith("physgan")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("physgan"):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _is_module(sub):  # from physgan import divergences: the submodule
                    found.append((sub, node.lineno, []))
                else:
                    found.append((node.module, node.lineno, [alias.name]))
    return found


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    assert {n for n in MODULES if n != "physgan" and _layer(n) is None} == set()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "physgan"))
def test_imports_run_down_the_layers(name):
    for target, line, names in GRAPH[name]:
        where = f"{MODULES[name]}:{line}: {name} imports {target}"
        assert target != "physgan", f"{where}: the package root (import from the module instead)"
        assert _layer(target) <= _layer(name), f"{where}, a higher layer"
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{where}: private names {private}"


def test_no_import_cycle():
    edges = {n: {t for t, _, _ in GRAPH[n] if t in MODULES and t != n} for n in MODULES}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        for target in sorted(edges[node]):
            visit(target, [*path, node])
        done.add(node)

    for name in sorted(MODULES):
        visit(name, [])


def test_the_walk_sees_the_package():
    assert importlib.util.find_spec("physgan.api") is not None
    assert {"physgan.api", "physgan.training.session", "physgan.generation"} <= set(MODULES)
