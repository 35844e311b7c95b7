"""The layering docs/architecture.md states, checked on the source: each built-in plugin and domain
could move into a distribution of its own, because it imports only ``seal_core`` and third-party
libraries (and, for a domain package, its own modules), and ``seal_core`` imports no plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted(p for p in (ROOT / "plugins").glob("*.py") if p.name != "__init__.py")
DOMAIN_PACKAGES = sorted(p for p in (ROOT / "domains").iterdir() if (p / "__init__.py").is_file())
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


@pytest.mark.parametrize("top", ["seal_core", "plugins", "domains"])
def test_no_module_is_over_400_lines(top):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / top).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
