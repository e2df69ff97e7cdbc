"""The architecture drawing names exactly what `ls core/` shows (docs/ARCHITECTURE.md), and every
module of core/ has a row in its module table."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")


def _core_entries() -> set[str]:
    core = os.path.join(ROOT, "core")
    names = set()
    for name in os.listdir(core):
        if name.startswith(("_", ".")):
            continue
        path = os.path.join(core, name)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "__init__.py")):
            names.add(name + "/")
        elif name.endswith(".py"):
            names.add(name)
    return names


def test_drawing_matches_ls_core():
    text = open(DOC, encoding="utf-8").read()
    drawing = text[text.index("```") + 3:text.index("```", text.index("```") + 3)]
    drawn = set(re.findall(r"[├└]── (\S+)", drawing))
    assert drawn == _core_entries()


def test_every_core_module_has_a_row():
    text = open(DOC, encoding="utf-8").read()
    missing = []
    for folder, _dirs, files in os.walk(os.path.join(ROOT, "core")):
        for name in files:
            if not name.endswith(".py") or name == "__init__.py" or "__pycache__" in folder:
                continue
            relative = os.path.relpath(os.path.join(folder, name), ROOT)
            if f"`{relative}`" not in text and f"`{os.path.dirname(relative)}/`" not in text:
                missing.append(relative)
    assert not missing, missing


def test_every_server_module_imports_with_the_standard_library_alone():
    """`python3 server.py` must start without the sensor's packages (README quick start): no module of
    core/server imports requests, dpkt or pcapy at load time, directly or through another module."""
    import subprocess
    import sys

    names = sorted(f"core.server.{name[:-3]}" for name in os.listdir(os.path.join(ROOT, "core", "server"))
                   if name.endswith(".py") and name != "__init__.py")
    code = ("import sys\nfor blocked in ('requests', 'dpkt', 'pcapy', 'cryptography'):\n    sys.modules[blocked] = None\n"
            + "".join(f"import {name}\n" for name in names))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
