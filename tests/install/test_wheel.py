"""The wheel holds every package of the checkout, and the import check sees what it must
(tests/install/wheel_check.py; `make test` also installs the wheel into a fresh environment and
runs a SEAL run from it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import wheel_check


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return wheel_check.build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_tracked_file_of_the_packages(wheel):
    assert wheel_check.differences(wheel) == []
    modules = wheel_check.modules_of(wheel)
    assert {"seal_core.runs.store", "seal_core.inner.stacked", "seal_plugins.multi_lora",
            "seal_domains.knowledge.loader"} <= set(modules)


def test_a_file_left_out_of_the_wheel_is_named(wheel, monkeypatch):
    """The negative control: a tracked file the wheel lacks (as seal_core/inner/ once was) is found."""
    tracked = wheel_check.tracked_files()
    monkeypatch.setattr(wheel_check, "tracked_files", lambda: tracked | {"seal_core/inner/forgotten.py"})
    assert wheel_check.differences(wheel) == ["missing from the wheel: seal_core/inner/forgotten.py"]


def test_modules_import_from_the_installed_wheel_not_from_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site),
                    str(wheel)], check=True)
    summary = wheel_check.import_check(sys.executable, wheel_check.modules_of(wheel), site)
    assert str(site) in summary
    # this environment's own seal_core is the editable checkout: the check must refuse it
    with pytest.raises(SystemExit, match="not from"):
        wheel_check.import_check(sys.executable, ["seal_core"])
    # and a module the wheel does not have is named
    with pytest.raises(SystemExit, match="cannot import seal_core.nowhere"):
        wheel_check.import_check(sys.executable, ["seal_core.nowhere"], site)
