"""The layering docs/architecture.md states, checked on the source: each built-in plugin and domain
could move into a distribution of its own, because it imports only ``seal_core`` and third-party
libraries (and, for a domain package, its own modules), and ``seal_core`` imports no plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FILES = sorted(p for p in (ROOT / "seal_plugins").glob("*.py") if p.name != "__init__.py")
DOMAIN_PACKAGES = sorted(p for p in (ROOT / "seal_domains").iterdir() if (p / "__init__.py").is_file())
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.stem)
def test_a_plugin_imports_no_other_plugin_and_no_domain(path):
    own = f"seal_plugins.{path.stem}"
    bad = {m for m in imported_modules(path)
           if m.startswith(("seal_plugins", "seal_domains")) and m != own}
    assert not bad, f"{path.name} imports {sorted(bad)}: shared machinery belongs in seal_core"


@pytest.mark.parametrize("package", DOMAIN_PACKAGES, ids=lambda p: p.name)
def test_a_domain_imports_only_itself_and_the_core(package):
    own = f"seal_domains.{package.name}"
    for path in package.rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.startswith(("seal_plugins", "seal_domains"))
               and m != own and not m.startswith(own + ".")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_core_imports_no_plugin_or_domain():
    for path in (ROOT / "seal_core").rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.startswith(("seal_plugins", "seal_domains"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The checker itself: an import of another plugin, in either spelling, is found."""
    source = tmp_path / "p.py"
    source.write_text("import seal_plugins.qa_evaluator\nfrom seal_plugins.lora_updater import LoraUpdater\n")
    assert imported_modules(source) == {"seal_plugins.qa_evaluator", "seal_plugins.lora_updater"}


@pytest.mark.parametrize("top", ["seal_core", "seal_plugins", "seal_domains", "benchmarks"])
def test_no_module_is_over_400_lines(top):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / top).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


# -- seal_core's layers: sub-packages that import one way, and no import cycle --------------------

#: seal_core's sub-packages, lowest first: each may import only from itself and those before it
#: (and from ``seal_core`` itself, which exports the public API of ``api``)
LAYERS = ["api", "runtime", "hooks", "models", "inner", "evaluation", "rl", "runs", "loop", "studies", "deploy",
          "commands"]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports, anywhere in its source (inside functions
    too): ``from a.b import c`` is an import of ``a.b.c`` when that is a module, else of ``a.b``."""
    files = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package
                    anchor = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    base = ".".join(anchor[:len(anchor) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # a name inside a module: the module
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_of(module: str) -> int:
    """The layer of a seal_core module: its sub-package's place in LAYERS. ``seal_core`` itself
    and ``seal_core._moved`` sit with ``api``, whose names it exports; ``seal_core.__main__``
    (``python -m seal_core``) is the command line's entry point, with ``commands``."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return LAYERS.index("commands")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else 0


def test_seal_core_has_no_import_cycle():
    cycle = find_cycle(import_graph(ROOT / "seal_core"))
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_cycle_check_sees_a_planted_cycle(tmp_path):
    """The checker itself: a cycle through an import inside a function is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg.sub import a\n    return a\n")
    assert find_cycle(import_graph(package)) == ["pkg.b", "pkg.sub.a", "pkg.b"]
    (package / "b.py").write_text("def thing():\n    return 1\n")
    assert find_cycle(import_graph(package)) is None


def test_every_sub_package_is_a_layer():
    found = sorted(p.name for p in (ROOT / "seal_core").iterdir() if (p / "__init__.py").is_file())
    assert found == sorted(LAYERS), "add a new sub-package to LAYERS (and docs/architecture.md's table)"


def test_imports_run_down_the_layers():
    wrong = [f"{module} ({LAYERS[layer_of(module)]}) imports {target} ({LAYERS[layer_of(target)]})"
             for module, targets in import_graph(ROOT / "seal_core").items() for target in targets
             if layer_of(target) > layer_of(module)]
    assert not wrong, "imports from a higher layer:\n" + "\n".join(sorted(wrong))


def layers_table() -> str:
    """docs/architecture.md's table of layers, from the sub-packages' docstrings and modules."""
    import importlib

    rows = []
    for i, name in enumerate(LAYERS):
        package = importlib.import_module(f"seal_core.{name}")
        summary = " ".join((package.__doc__ or "").strip().split("\n\n")[0].split())
        modules = ", ".join(f"`{p.stem}`" for p in sorted((ROOT / "seal_core" / name).glob("*.py")) if p.stem != "__init__")
        rows.append(f"| {i + 1} | `seal_core.{name}` | {summary} | {modules} |")
    return "\n".join(rows)


def test_the_architecture_doc_lists_every_layer():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("| ---: | --- | --- | --- |\n") + len("| ---: | --- | --- | --- |\n")
    found = text[start:text.index("\n<!-- /layers -->")]
    assert found == layers_table(), "regenerate docs/architecture.md's layers table: python tests/docs/test_architecture.py"


def write_layers_table() -> None:
    doc = ROOT / "docs" / "architecture.md"
    text = doc.read_text(encoding="utf-8")
    start = text.index("| ---: | --- | --- | --- |\n") + len("| ---: | --- | --- | --- |\n")
    doc.write_text(text[:start] + layers_table() + text[text.index("\n<!-- /layers -->"):], encoding="utf-8")


if __name__ == "__main__":
    write_layers_table()
