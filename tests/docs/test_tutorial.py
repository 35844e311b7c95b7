"""docs/plugins.md's tutorial, followed from an empty folder exactly as written: its commands run
in order (``cd`` moves into the folder it made), each file block is written to its path in the
folder, and the plugin's tests pass (``python -m pytest`` in the folder).

What differs from a reader's terminal: ``pip install -e .`` installs into a folder of its own
(``--target``, on ``PYTHONPATH`` for the later commands) instead of this environment, whose own
install of the example it would otherwise repoint at a temporary folder; publishing
(``python -m build``, ``twine``) is not run (it needs the network); ``/tmp/...`` is a temporary
folder.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8").split("## Tutorial", 1)[1].split("\n## ", 1)[0]
STEP = re.compile(r"<!-- file: examples/seal-plugin-example/(\S+) -->\n```[\w-]*\n(.*?)\n```|```bash\n(.*?)```", re.S)
SKIPPED = ("python -m build", "python -m twine")


def test_the_tutorial_from_an_empty_folder_ends_with_its_tests_passing(tmp_path):
    cwd, ran = tmp_path, []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for match in STEP.finditer(TUTORIAL):
        path, content, block = match.groups()
        if path:
            (cwd / path).write_text(content + "\n", encoding="utf-8")
            continue
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words or shlex.join(words).startswith(SKIPPED):
                continue
            if words[0] == "cd":
                cwd = cwd / words[1]
                continue
            if words[:2] == ["pip", "install"]:  # into a folder of its own, not this environment
                site = tmp_path / "site"
                command = f"{sys.executable} -m pip install -q --no-deps --no-build-isolation --target {site} ."
                env["PYTHONPATH"] = str(site)
            else:  # the doc's /tmp/ paths moved first: sys.executable may itself live under /tmp/
                command = line.split("  #")[0].replace("/tmp/", f"{tmp_path}/")  # as written, its comment aside
                command = command.replace("seal-run", f"{sys.executable} -m seal_core")
                command = command.replace("python -m pytest", f"{sys.executable} -m pytest -q -p no:cacheprovider")
            done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"`{line.strip()}` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            ran.append(words[0] if words[0] != "python" else " ".join(words[:3]))
    assert "python -m pytest" in ran and "seal-run" in ran  # the tests ran, and the first run
    assert sorted(p.name for p in (tmp_path / "seal-plugin-example" / "tests").glob("test_*.py")) == [
        "test_exact_match.py", "test_lexicon.py", "test_plugin.py"]
