"""Typed stub of the C module core.accel._http (source: _http.c), the twin of core.protocols.http.parse_request_py."""

from typing import Any

from core.decode.packet import Decoded
from core.protocols.http import HttpRequest

def init(record_type: type[HttpRequest], /) -> None: ...
def parse_request(payload: bytes, /) -> HttpRequest | None: ...
def request_seen(d: Decoded, sec: int, clean: int, state: tuple[Any, ...], /) -> bool: ...
