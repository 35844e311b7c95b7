"""docs/plugins.md stays in step with the code it documents.

- The hook reference is generated from ``seal_core/api/hookspecs.py``: the section between the two
  markers must equal what :func:`hook_reference` renders now.
- A code block right after ``<!-- file: PATH -->`` must equal that file; one after
  ``<!-- from: PATH -->`` must be a run of whole lines of it.
- Every hook has a built-in implementation or a test named ``test_hook_<hook name>``.

After changing a hookspec, its docstring or a file the tutorial shows in full, regenerate the
reference and the ``file:`` blocks with::

    .venv/bin/python tests/docs/test_plugin_docs.py --write
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

from seal_core.api import hookspecs
from seal_core.hooks.registry import KINDS, Registry, hook_names

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
BEGIN = "<!-- BEGIN HOOK REFERENCE (generated from seal_core/api/hookspecs.py; do not edit by hand) -->"
END = "<!-- END HOOK REFERENCE -->"
REGENERATE = ".venv/bin/python tests/docs/test_plugin_docs.py --write"
_MARKED_BLOCK = re.compile(r"<!-- (file|from): (\S+) -->\n```[\w-]*\n(.*?)\n```", re.S)
_FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```([\w-]*)\n.*?\n```", re.S)


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data):`~?([^`]+)`")
_PARAM = re.compile(r"^:param (\w+):\s*(.*)$")


def _inline(text: str) -> str:
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def docstring_to_markdown(doc: str) -> str:
    """The reST subset our docstrings use, as Markdown.

    Paragraphs stay paragraphs; ````x```` and ``:class:`x``` become ```x```; ``:param name: text``
    lines become a "Parameters" list; a paragraph ending in ``::`` introduces the indented block
    after it, which becomes a fenced Python block.
    """
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    in_params = False
    while i < len(lines):
        line = lines[i]
        match = _PARAM.match(line)
        if match:
            if not in_params:
                out += ["**Parameters**", ""]
                in_params = True
            out.append(f"- `{match.group(1)}`: {_inline(match.group(2))}")
            i += 1
            while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
                out[-1] += " " + _inline(lines[i].strip())
                i += 1
            continue
        in_params = in_params and bool(line.strip())
        if line.rstrip().endswith("::"):
            out.append(_inline(line.rstrip()[:-1]))
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            out += ["", "```python", *code.splitlines(), "```"]
            if i < len(lines):
                out.append("")
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


def hookspec_signatures() -> dict[str, str]:
    """``def name(args) -> return`` for every hookspec, exactly as written in hookspecs.py."""
    tree = ast.parse(Path(hookspecs.__file__).read_text(encoding="utf-8"))
    return {
        node.name: f"def {node.name}({ast.unparse(node.args)}) -> {ast.unparse(node.returns)}"
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in hook_names()
    }


def declared_attributes(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, docstring) of each class attribute declared with a docstring in ``cls``'s
    own body (an annotated assignment followed by a string), in source order."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    found = []
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            found.append((node.target.id, ast.unparse(node.value), inspect.cleandoc(after.value.value)))
    return found


def hook_reference() -> str:
    """The Markdown of the hook reference section (without its markers)."""
    signatures = hookspec_signatures()
    by_hook = {kind.hook: kind for kind in KINDS.values()}
    parts = [docstring_to_markdown(hookspecs.__doc__)]
    for title, names in (
        ("Component hooks", [n for n in hook_names() if n in by_hook]),
        ("Event hooks", [n for n in hook_names() if n not in by_hook]),
    ):
        parts.append(f"### {title}")
        for name in names:
            section = [f"#### `{name}`", "", "```python", signatures[name], "```", "",
                       docstring_to_markdown(getattr(hookspecs, name).__doc__)]
            kind = by_hook.get(name)
            if kind is not None:
                needs = ", ".join(f"`{a}`" for a in ("name", *kind.required))
                section += ["", f"Registers `{kind.name}` components (base class "
                            f"`seal_core.{kind.base.__name__}`); the registry checks that each one "
                            f"has {needs}."]
                flags = declared_attributes(kind.base)
                if flags:
                    section += ["", "Attributes it may set:", ""]
                    section += [f"- `{attr}` (default `{default}`): {_inline(' '.join(doc.split()))}" for attr, default, doc in flags]
            parts.append("\n".join(section))
    return "\n\n".join(parts)


def documented_reference() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{DOC} must hold {BEGIN!r} and {END!r} once"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write_docs() -> None:
    """Regenerate the hook reference, and copy each ``<!-- file: PATH -->`` block from its file."""
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    text = f"{head}{BEGIN}\n\n{hook_reference()}\n\n{END}{tail}"

    def copy_file(match: re.Match) -> str:
        path, lang = match.group(1), match.group(2)
        source = (ROOT / path).read_text(encoding="utf-8").rstrip("\n")
        return f"<!-- file: {path} -->\n```{lang}\n{source}\n```"

    DOC.write_text(_FILE_BLOCK.sub(copy_file, text), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# the hook reference
# ---------------------------------------------------------------------------------------------


def test_hook_reference_is_generated_from_the_hookspecs():
    assert documented_reference() == hook_reference(), (
        f"docs/plugins.md's hook reference is out of date with seal_core/api/hookspecs.py: run {REGENERATE}"
    )


def test_every_hook_is_documented_with_its_signature_and_summary():
    """Said plainly, what the comparison above implies: every hook, its exact signature, its summary."""
    reference = documented_reference()
    for name, signature in hookspec_signatures().items():
        assert f"#### `{name}`" in reference, name
        assert f"```python\n{signature}\n```" in reference, name
        summary = inspect.cleandoc(getattr(hookspecs, name).__doc__).split("\n\n")[0]
        assert docstring_to_markdown(summary) in reference, name
    assert set(hookspec_signatures()) == set(hook_names())


def test_the_reference_names_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^#### `(\w+)`$", documented_reference(), flags=re.M))
    assert documented == set(hook_names())


def test_the_algorithm_flags_are_declared_and_in_the_reference():
    from seal_core import RLAlgorithm

    flags = {name: default for name, default, _ in declared_attributes(RLAlgorithm)}
    assert flags == {"needs_logprobs": "False", "supports_deepspeed": "False"}
    assert "`needs_logprobs` (default `False`)" in documented_reference()


def test_docstring_conversion():
    doc = """Summary with ``code`` and :class:`seal_core.Domain`.

    Example::

        @hookimpl
        def f(register):
            register(X())

    :param register: call it
        once per component.
    """
    assert docstring_to_markdown(doc) == (
        "Summary with `code` and `seal_core.Domain`.\n\nExample:\n\n```python\n@hookimpl\n"
        "def f(register):\n    register(X())\n```\n\n**Parameters**\n\n"
        "- `register`: call it once per component."
    )


# ---------------------------------------------------------------------------------------------
# the tutorial's code is the example's code
# ---------------------------------------------------------------------------------------------



def marked_blocks() -> list[tuple[str, str, str]]:
    return _MARKED_BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_tutorial_shows_the_example_files():
    shown = {path for mode, path, _ in marked_blocks() if mode == "file"}
    example = "examples/seal-plugin-example/"
    for name in ("pyproject.toml", "seal_plugin_example/lexicon.py", "seal_plugin_example/exact_match.py",
                 "seal_plugin_example/plugin.py", "tests/conftest.py"):
        assert example + name in shown, f"the tutorial should show {name} in full"


def test_marked_code_blocks_match_their_files():
    blocks = marked_blocks()
    assert blocks
    for mode, path, code in blocks:
        source = (ROOT / path).read_text(encoding="utf-8")
        if mode == "file":
            assert code + "\n" == source, f"docs/plugins.md shows {path} differently from the file"
        else:
            assert f"\n{code}\n" in f"\n{source}", f"docs/plugins.md quotes lines that are not in {path}"


# ---------------------------------------------------------------------------------------------
# every hook is exercised
# ---------------------------------------------------------------------------------------------


def _hook_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names |= {n.name for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("test_hook_")}
    return names


def test_every_hook_has_a_builtin_implementation_or_a_test():
    registry = Registry()
    tests = _hook_tests()
    for name in hook_names():
        origins = [registry.origin(impl.plugin_name) for impl in getattr(registry.hook, name).get_hookimpls()]
        builtin = [o for o in origins if o is not None and o.distribution == "seal-framework"]
        assert builtin or f"test_hook_{name}" in tests, (
            f"hook {name} has no built-in implementation and no test named test_hook_{name}"
        )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write   (regenerates the hook reference in {DOC})")
    write_docs()
    print(f"wrote the hook reference and the file blocks into {DOC}")
