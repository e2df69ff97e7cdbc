"""Typed stub of the C module core.accel._dns (source: _dns.c), the twin of core.protocols.dns.parse_py."""

from collections.abc import Set
from typing import Any

from core.protocols.dns import DnsAnswer, DnsMessage

def init(message_type: type[DnsMessage], answer_type: type[DnsAnswer], /) -> None: ...
def parse(payload: bytes, tcp: bool = False) -> DnsMessage | None: ...
def query_seen(payload: bytes, sec: int, clean: int, cache: dict[str, Any], ignored: Set[str],
               exhaustion: tuple[dict[str, list[Any]], int, int, int] | None, /) -> bool: ...
