#!/usr/bin/env python3
"""Build the sensor's optional C accelerators (core/accel/_*.c) in place.

Where it sits: install time. `setup.sh` runs it after the virtual environment is ready, and the
Dockerfile runs it while gcc is still in the image. Each `core/accel/_NAME.c` becomes the
extension module `core.accel._NAME` (one shared object beside the source, named with this
interpreter's extension suffix). A module is rebuilt only when its source or a header in
core/accel/ is newer than the shared object.

    python3 tools/build_accel.py [--force] [--check]

--check builds nothing: it exits 1 when a module is missing or older than its sources.
Without a compiler the sensor still runs, on the pure-Python code paths (about half the packet
rate); `sensor.py -T` says which paths are in use. Exit status: 0 built or up to date, 1 a
build failed (the compiler's message is printed).
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEL = os.path.join(ROOT, "core", "accel")
CFLAGS = ["-O2", "-fPIC", "-shared", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing"]


def targets() -> list[tuple[str, str]]:
    """(source, shared object) for every accelerator source."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    out = []
    for source in sorted(glob.glob(os.path.join(ACCEL, "_*.c"))):
        out.append((source, source[:-2] + suffix))
    return out


def stale(source: str, shared: str) -> bool:
    if not os.path.exists(shared):
        return True
    newest = max([os.path.getmtime(source)] + [os.path.getmtime(h) for h in glob.glob(os.path.join(ACCEL, "*.h"))])
    return os.path.getmtime(shared) < newest


def build(source: str, shared: str) -> bool:
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
    include = sysconfig.get_paths()["include"]
    command = compiler + CFLAGS + [f"-I{include}", f"-I{ACCEL}", source, "-o", shared + ".tmp"]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as ex:
        print(f"build_accel: cannot run the C compiler ({ex}); the sensor will use its pure-Python paths",
              file=sys.stderr)
        return False
    if result.returncode != 0:
        print(f"build_accel: {os.path.relpath(source, ROOT)} failed:\n{result.stderr}", file=sys.stderr)
        return False
    os.replace(shared + ".tmp", shared)  # a running sensor keeps the old mapping
    print(f"build_accel: built {os.path.relpath(shared, ROOT)}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--force", action="store_true", help="rebuild every module")
    parser.add_argument("--check", action="store_true", help="only report missing or stale modules")
    args = parser.parse_args(argv)
    failed = False
    for source, shared in targets():
        if not (args.force or stale(source, shared)):
            continue
        if args.check:
            print(f"build_accel: {os.path.relpath(shared, ROOT)} is missing or older than its source",
                  file=sys.stderr)
            failed = True
        elif not build(source, shared):
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
