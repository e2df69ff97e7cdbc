"""Plugins: user modules called with every delivered event (the original's plugin contract).

Where it sits: the last step of the event pipeline (`EventPipeline` calls `runner.call(event,
packet)` after the sinks), and detect.py's plugin feed (non-SYN TCP packets of a flow with a
listed IP reach plugins through `emit_plugins_only`, without log lines).

Loading (`-p name[,name]` or the PLUGINS key): each name is tried as a literal path, then
`plugins/<name>`, then `plugins/<name>.py`. The file must end in `.py`, its folder must hold an
`__init__.py`, and the module must define `plugin(event_tuple, packet)` (two parameters). Any
problem is a `PluginError` naming the plugin: the sensor refuses to start rather than run
without a plugin the operator asked for.

Isolation: every call is wrapped; an exception is counted per plugin and reported once (with
its traceback) to stderr, and the sensor goes on.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Callable

from core.config import ROOT_DIR
from core.events.event import Event

PLUGINS_DIR = os.path.join(ROOT_DIR, "plugins")

Plugin = Callable[[tuple[object, ...], bytes | None], object]  # plugin(event_tuple, packet)


class PluginError(Exception):
    pass


def _resolve(name: str, plugins_dir: str) -> str:
    for candidate in (name, os.path.join(plugins_dir, name), os.path.join(plugins_dir, name + ".py")):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise PluginError(f"plugin {name!r}: not found (tried the path, {plugins_dir}/{name} and {name}.py)")


def load_plugin(name: str, plugins_dir: str = PLUGINS_DIR) -> tuple[str, Plugin]:
    path = _resolve(name, plugins_dir)
    if not path.endswith(".py"):
        raise PluginError(f"plugin {name!r}: {path} is not a .py file")
    if not os.path.isfile(os.path.join(os.path.dirname(path), "__init__.py")):
        raise PluginError(f"plugin {name!r}: {os.path.dirname(path)} has no __init__.py")
    module_name = "maltrail_plugin_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {name!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as ex:  # isolation point: a broken plugin file
        raise PluginError(f"plugin {name!r}: import failed: {type(ex).__name__}: {ex}") from None
    function = getattr(module, "plugin", None)
    if not callable(function):
        raise PluginError(f"plugin {name!r}: no function plugin(event_tuple, packet)")
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise PluginError(f"plugin {name!r}: plugin() must take (event_tuple, packet)")
    return os.path.splitext(os.path.basename(path))[0], function


class PluginRunner:
    """Calls every loaded plugin, each call isolated."""

    def __init__(self, plugins: list[tuple[str, Plugin]]) -> None:
        self.plugins = plugins
        self.calls = 0
        self.errors: dict[str, int] = {name: 0 for name, _ in plugins}

    def call(self, event: Event, packet: bytes | None) -> None:
        self.calls += 1
        for name, function in self.plugins:
            try:
                function(tuple(event), packet)
            except Exception:  # isolation point: one plugin call
                self.errors[name] += 1
                if self.errors[name] == 1:
                    import traceback  # a plugin's first failure only: not a start-up import

                    print(f"maltrail: plugin {name} failed (reported once, further failures counted):\n"
                          + traceback.format_exc().rstrip(), file=sys.stderr)

    def __len__(self) -> int:
        return len(self.plugins)


def plugin_names(cli: str | None, config_value: str | None) -> list[str]:
    names: list[str] = []
    for source in (cli, config_value):
        for name in (source or "").replace(";", ",").split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return names


def load_plugins(names: list[str] | str, plugins_dir: str = PLUGINS_DIR) -> PluginRunner:
    if isinstance(names, str):
        names = plugin_names(names, None)
    return PluginRunner([load_plugin(name, plugins_dir) for name in names])
