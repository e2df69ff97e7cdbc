"""Failed-login back-off: fixed-size, flood-proof tables of failure levels per key.

Where it sits: auth.py keeps one `Backoff` per kind of key (account, address, account+address,
trusted browser, and a single global one) and asks `locked_until(key)` before it checks a
password, then calls `failed(key)` after a wrong one. Nothing here knows about HTTP or users.

A key's failure level rises by one per failure and leaks away at `Policy.leak` per second; from
`Policy.free` failures on, each failure locks the key for `base`, then twice as long per further
failure, up to `cap` (exponential back-off).

The table is a sketch of fixed size: each key maps (BLAKE2b keyed with a per-process secret, so
clients cannot aim at chosen cells) to one cell in each of `rows` rows. A cell only ever grows: a
failure raises its level and moves its lock time later, never earlier. A key's level and lock
are the smallest over its cells, so a collision can lengthen a key's lock but never shorten it.
There is no eviction: however many other keys fail, a locked key stays locked until its own
time passes (the failure mode of a flood is locking too much, never unlocking).
"""

from __future__ import annotations

import hashlib
import math
import os
from array import array
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    free: int          # failures before the first lock
    leak: float        # failures forgotten per second
    base: float        # the first lock, seconds; each further failure doubles it
    cap: float         # the longest lock, seconds

    @property
    def top(self) -> float:
        """The level past which the lock no longer grows: a key is never remembered above it."""
        steps = 0
        while self.base * 2.0 ** steps < self.cap:
            steps += 1
        return float(self.free + steps)

    def delay(self, level: float) -> float:
        """The lock that a failure bringing the level to `level` sets (a failure counts until it has
        leaked away whole)."""
        count = math.ceil(level - 1e-9)
        if count < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(count - self.free, 60))


class Backoff:
    """Failure levels and locks of keys in `rows` x `width` cells. Not thread-safe (auth.py locks)."""

    def __init__(self, policy: Policy, width: int = 8192, rows: int = 4, secret: bytes | None = None) -> None:
        self.policy = policy
        self.width = width
        self.rows = rows
        self.secret = secret or os.urandom(16)
        size = width * rows
        self.levels = array("d", bytes(8 * size))      # level at the cell's last failure
        self.lasts = array("d", bytes(8 * size))       # time of the cell's last failure
        self.until = array("d", bytes(8 * size))       # the cell's lock ends (only ever later)

    def _cells(self, key: str) -> list[int]:
        digest = hashlib.blake2b(key.encode("utf-8", "replace"), key=self.secret, digest_size=4 * self.rows).digest()
        return [row * self.width + int.from_bytes(digest[4 * row:4 * row + 4], "little") % self.width
                for row in range(self.rows)]

    def _level(self, cell: int, now: float) -> float:
        return max(0.0, self.levels[cell] - max(0.0, now - self.lasts[cell]) * self.policy.leak)

    def level(self, key: str, now: float) -> float:
        """The key's failure level now (0: no failure within the leak time)."""
        return min(self._level(cell, now) for cell in self._cells(key))

    def locked_until(self, key: str) -> float:
        """When the key's lock ends (in the past, or 0, when it is not locked)."""
        return min(self.until[cell] for cell in self._cells(key))

    def failed(self, key: str, now: float) -> float:
        """Count one failure of the key at `now`; the time its lock ends."""
        top = self.policy.top
        for cell in self._cells(key):
            level = min(top, self._level(cell, now) + 1.0)
            self.levels[cell] = level
            self.lasts[cell] = now
            self.until[cell] = max(self.until[cell], now + self.policy.delay(level))
        return self.locked_until(key)
