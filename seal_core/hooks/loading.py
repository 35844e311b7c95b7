"""Importing a ``--plugins`` value: a path to a ``.py`` file or an importable module name, with
one-paragraph errors that name the plugin and the fix."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seal_core.api.errors import PluginError


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from: an installed distribution (entry point) and/or a file."""

    source: str  # "distribution==version", else the file (or module name) of the plugin
    distribution: str | None = None
    version: str | None = None
    file: str | None = None


def import_plugin(spec: str) -> tuple[str, Any, Origin]:
    """Import a ``--plugins`` value: a ``.py`` path or a module name. Returns (name, module, origin)."""
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.suffix == ".py":
            if not path.is_file():
                raise PluginError(
                    f"Plugin file '{spec}' does not exist. Pass an existing .py file or an "
                    "importable module name to --plugins."
                )
            resolved = path.resolve()
            digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
            mod_name = f"seal_extra_plugin_{path.stem}_{digest}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
            return path.stem, module, Origin(str(resolved), file=str(resolved))
        module = importlib.import_module(spec)
        file = getattr(module, "__file__", None)
        return spec, module, Origin(file or spec, file=file)
    except PluginError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise PluginError(
                f"Plugin '{spec}' is not an importable module (and not a .py file). Check the "
                "name, install the plugin's distribution, or pass the path of its .py file."
            ) from exc
        raise PluginError(f"Plugin '{spec}' raised on import: {exc!r}. Fix the plugin.") from exc
    except Exception as exc:  # a plugin's own bug: name it, do not start the run
        raise PluginError(f"Plugin '{spec}' raised on import: {exc!r}. Fix the plugin.") from exc
