"""tools/build_accel.py: every accelerator source has an up-to-date shared object after set-up, and
the loader reports them; a source newer than its shared object is reported stale by --check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from core import accel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "build_accel.py")


def test_every_module_is_built_and_current():
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the sensor runs on its pure-Python paths")
    result = subprocess.run([sys.executable, TOOL, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert accel.status() == {name.lstrip("_"): True for name in accel.MODULES}
    sources = sorted(f[:-2] for f in os.listdir(os.path.join(ROOT, "core", "accel")) if f.endswith(".c"))
    assert sources == sorted(accel.MODULES)  # every source is listed by the loader, and only those


def test_check_reports_a_stale_module(tmp_path):
    """--check on a copy of the tool, one source and the shared headers: a missing shared object,
    then one older than its source, then one older than a header, are reported."""
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the sensor runs on its pure-Python paths")
    tree = tmp_path / "tree"
    (tree / "tools").mkdir(parents=True)
    (tree / "core" / "accel").mkdir(parents=True)
    shutil.copy(TOOL, tree / "tools")
    source = tree / "core" / "accel" / "_url.c"
    shutil.copy(os.path.join(ROOT, "core", "accel", "_url.c"), source)
    headers = [name for name in os.listdir(os.path.join(ROOT, "core", "accel")) if name.endswith(".h")]
    for name in headers:
        shutil.copy(os.path.join(ROOT, "core", "accel", name), tree / "core" / "accel" / name)
    check = [sys.executable, str(tree / "tools" / "build_accel.py"), "--check"]
    missing = subprocess.run(check, capture_output=True, text=True)
    assert missing.returncode == 1 and "_url" in missing.stderr
    built = subprocess.run([sys.executable, str(tree / "tools" / "build_accel.py")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert subprocess.run(check).returncode == 0
    shared = next(path for path in (tree / "core" / "accel").iterdir() if path.name.endswith(".so"))
    built_at = os.path.getmtime(shared)
    sources = [source] + [tree / "core" / "accel" / name for name in headers]
    for path in sources:
        os.utime(path, (built_at - 10, built_at - 10))
    for newer in sources:  # each one alone makes the module stale
        os.utime(newer, (built_at + 10, built_at + 10))
        stale = subprocess.run(check, capture_output=True, text=True)
        assert stale.returncode == 1 and "older than its source" in stale.stderr, newer
        os.utime(newer, (built_at - 10, built_at - 10))
        assert subprocess.run(check).returncode == 0, newer
    assert headers  # crc32.h at least: the header rule is exercised
