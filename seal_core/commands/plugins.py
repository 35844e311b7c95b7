"""``seal-run plugins [--json]``: every component by kind, with its plugin and where it came from."""

from __future__ import annotations

import argparse
import json

from seal_core.commands.common import plugin_arg


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("plugins", help="list every component by kind, with its plugin")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugin_arg(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Every component by kind, with its plugin and where that plugin came from.

    ``--json`` prints one object per component: kind, name, plugin, distribution and version
    (null for a plugin passed as a file or module), file (the plugin module's file) and source
    ("distribution==version", else the file). ``SEAL_TRACE_HOOKS=1`` also logs each hook call.
    """
    from seal_core.hooks.registry import Registry

    entries = Registry(args.plugins).entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    header = ("kind", "name", "plugin", "source")
    rows = [header] + [(e.kind, e.name, e.plugin, e.source) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
