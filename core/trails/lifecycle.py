"""Index lifecycle: where a trail index lives, mapping and validating it, building it in a child process.

Where it sits: under core/trails/store.py (TrailStore.open / reopen_if_changed). The index file is
written by core/trails/build.py in a child process (`python -I`, under an exclusive lock beside the
index, so several sensor workers build it once); a finished, valid index is mapped read-only here and
handed to the lookup view (core/trails/view.py).

Index location: `<csv>.idx` beside the CSV when that folder is writable, else
`~/.maltrail/index/<sha1 of the absolute CSV path>.idx` (or `index_dir` when given).
"""

from __future__ import annotations

import fcntl
import io
import mmap
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from core.digests import sha1
from core.trails import index as ix

if TYPE_CHECKING:  # imported where a build starts: a warm start maps the index and builds nothing
    import subprocess

BUILD_TIMEOUT = 900.0         # seconds a child build may take before it is given up
# The build child: `python -I` (no user site, no PYTHONPATH, no script folder on sys.path), so it is
# told where the `core` package lives and runs core.trails.build.main(["-c", CSV, IDX]).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(ix.__file__))))
BUILD_CHILD = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
               "from core.trails.build import main; sys.exit(main(sys.argv))")


class TrailStoreError(Exception):
    """The trail set cannot be used (missing CSV, unwritable index location, failed build)."""


def _dir_writable(path: str) -> bool:
    """A folder we may create files in. root ignores permission bits, so honour them explicitly."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not os.access(path, os.W_OK):
        return False
    return not (os.geteuid() == 0 and not mode & 0o222)


def index_candidates(csv_path: str, index_dir: str | None = None) -> list[str]:
    """Where the index may live, in order of preference."""
    absolute = os.path.abspath(csv_path)
    digest = sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    if index_dir is not None:
        return [os.path.join(index_dir, f"{os.path.basename(absolute)}-{digest}.idx")]
    home = os.path.join(os.path.expanduser("~"), ".maltrail", "index", f"{digest}.idx")
    if _dir_writable(os.path.dirname(absolute)):
        return [absolute + ".idx", home]
    return [home]


class Mapped(NamedTuple):
    mm: mmap.mmap
    file: io.FileIO
    header: ix.Header
    index_path: str


def map_valid(idx_path: str, stamp: ix.CsvStamp | None) -> Mapped | None:
    """Map idx_path when it exists, is intact (header + body CRC) and (if stamp) matches the CSV."""
    try:
        file = io.FileIO(idx_path, "r")
    except OSError:
        return None
    mapped = None
    try:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        header = ix.read_header(os.pread(fd, ix.HEADER_SIZE, 0), size)
        fresh = header is not None and (stamp is None or stamp == (header.csv_size, header.csv_mtime_ns,
                                                                   header.csv_inode, header.csv_dev))
        if header is not None and fresh:
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            if ix.body_crc_of(mm) == header.body_crc:
                mapped = Mapped(mm, file, header, idx_path)
            else:
                mm.close()
    except (OSError, ValueError):
        mapped = None
    if mapped is None:
        file.close()
    return mapped


def _start_child(csv_path: str, idx_path: str) -> subprocess.Popen[bytes]:
    """Start the index build in a child process, so its memory never inflates ours."""
    import subprocess

    try:
        return subprocess.Popen([sys.executable, "-I", "-c", BUILD_CHILD, PROJECT_ROOT, csv_path, idx_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as ex:
        raise TrailStoreError(f"trail index build failed for {csv_path}: {ex}") from ex


def _child_result(proc: subprocess.Popen[bytes], csv_path: str) -> dict[str, object]:
    """Wait for a build child; its figures (JSON line) or TrailStoreError with its last error line."""
    import json
    import subprocess

    try:
        out, err = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TrailStoreError(f"trail index build for {csv_path} took longer than {BUILD_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise TrailStoreError(message[-1] if message else f"trail index build failed for {csv_path}")
    try:
        info = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        return dict(info) if isinstance(info, dict) else {}
    except (ValueError, IndexError):
        return {}


class BackgroundBuild:
    """A build running in a child process (holding the index lock) while lookups go on."""

    def __init__(self, proc: subprocess.Popen[bytes], lock_fd: int, csv_path: str, idx_path: str) -> None:
        self.proc, self.lock_fd, self.csv_path, self.idx_path = proc, lock_fd, csv_path, idx_path

    def done(self) -> bool:
        return self.proc.poll() is not None

    def finish(self) -> tuple[Mapped, dict[str, object]]:
        """Wait for the child, release the lock, map the result."""
        try:
            build = _child_result(self.proc, self.csv_path)
        finally:
            os.close(self.lock_fd)
        mapped = map_valid(self.idx_path, None)
        if mapped is None:
            raise TrailStoreError(f"trail index {self.idx_path} is invalid right after its build")
        return mapped, build


def _open_lock(idx_path: str, errors: list[str]) -> int | None:
    """The lock file guarding one index location (None, with the reason in errors, when the
    location cannot be used)."""
    try:
        os.makedirs(os.path.dirname(idx_path), exist_ok=True)
        return os.open(idx_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as ex:
        errors.append(f"{idx_path}: {ex.strerror or ex}")
        return None


def start_background(csv_path: str, index_dir: str | None,
                      stamp: ix.CsvStamp) -> Mapped | BackgroundBuild | None:
    """Without blocking: a fresh index (someone built it), a build we started, or None when
    another process holds the lock (it is building; look again later)."""
    errors: list[str] = []
    for idx_path in index_candidates(csv_path, index_dir):
        lock_fd = _open_lock(idx_path, errors)
        if lock_fd is None:
            continue
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            return None
        try:
            mapped = map_valid(idx_path, stamp)
            if mapped is not None:
                os.close(lock_fd)
                return mapped
            _remove_stale_temps(idx_path)
            return BackgroundBuild(_start_child(csv_path, idx_path), lock_fd, csv_path, idx_path)
        except BaseException:
            os.close(lock_fd)
            raise
    raise TrailStoreError("no writable location for the trail index: " + "; ".join(errors))


def _remove_stale_temps(idx_path: str) -> None:
    """Temp files of builds that died (we hold the lock, so no live build owns one)."""
    folder, prefix = os.path.dirname(idx_path), os.path.basename(idx_path) + ".tmp."
    for name in os.listdir(folder):
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def ensure_index(csv_path: str, index_dir: str | None) -> tuple[Mapped, dict[str, object] | None]:
    """A valid, fresh mapping for csv_path; builds (once, under a lock) when needed."""
    try:
        stamp = ix.csv_stamp(csv_path)
    except OSError as ex:
        raise TrailStoreError(f"trail file {csv_path} cannot be read: {ex.strerror or ex}") from None
    candidates = index_candidates(csv_path, index_dir)
    for idx_path in candidates:
        mapped = map_valid(idx_path, stamp)
        if mapped is not None:
            return mapped, None
    errors: list[str] = []
    for idx_path in candidates:
        lock_fd = _open_lock(idx_path, errors)
        if lock_fd is None:
            continue
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            mapped = map_valid(idx_path, ix.csv_stamp(csv_path))  # another process may have built it
            if mapped is not None:
                return mapped, None
            _remove_stale_temps(idx_path)
            build = _child_result(_start_child(csv_path, idx_path), csv_path)
            mapped = map_valid(idx_path, None)
            if mapped is None:
                raise TrailStoreError(f"trail index {idx_path} is invalid right after its build")
            return mapped, build
        except OSError as ex:
            raise TrailStoreError(f"trail file {csv_path}: {ex.strerror or ex}") from None
        finally:
            os.close(lock_fd)
    raise TrailStoreError("no writable location for the trail index: " + "; ".join(errors))


# --- the store ------------------------------------------------------------------------------------

