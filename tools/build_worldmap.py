"""Builds html/data/world.json, the country outlines of the web client's world map, once, from
Natural Earth's 1:110m admin-0 countries (public domain) as TopoJSON (the `world-atlas` npm
package, ISC licence: `npm pack world-atlas`, then `countries-110m.json` in the tarball).

Where it sits: a maintainer's tool, not run by the server or the tests; its output is bundled.
world-atlas keys countries by ISO 3166-1 numeric code; the server's country table (core/update/
geo.py) by alpha-2, so the numeric codes are mapped with an ISO 3166-1 table (Debian's
`iso-codes` package: /usr/share/iso-codes/json/iso_3166-1.json). Kosovo (no ISO code) gets XK,
as the RIRs write it; Northern Cyprus and Somaliland are drawn without a code.

Output: `{"source", "scale", "countries": [{"cc", "name", "c": [lon, lat], "p": [ring, ...]}]}`;
a ring is a flat list of integer coordinates in units of `scale` degrees, the first pair
absolute (lon, lat) and every next pair the difference from the previous point (longitudes run
past ±180 rather than jump across the antimeridian); "c" is the
centre of the largest polygon (for labels and arcs).

    python3 tools/build_worldmap.py countries-110m.json [--iso /usr/share/iso-codes/json/iso_3166-1.json]
"""

from __future__ import annotations

import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "html", "data", "world.json")
SCALE = 0.1          # degrees per unit: 110m outlines carry no finer detail worth the bytes
BY_NAME = {"Kosovo": "XK"}

Point = tuple[float, float]


def decode_arcs(topo: dict) -> list[list[Point]]:
    """TopoJSON's quantized, delta-encoded arcs as lists of (lon, lat)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring_points(indexes: list[int], arcs: list[list[Point]]) -> list[Point]:
    points: list[Point] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])
    return points


def unwrap(points: list[Point]) -> list[Point]:
    """Longitudes made continuous (a ring crossing the antimeridian, as Russia's and Fiji's do,
    runs past 180 instead of jumping back; the map draws such a ring a second time, shifted)."""
    out: list[Point] = []
    for lon, lat in points:
        if out:
            while lon - out[-1][0] > 180:
                lon -= 360
            while out[-1][0] - lon > 180:
                lon += 360
        out.append((lon, lat))
    return out


def encode(points: list[Point]) -> list[int]:
    """Unwrapped, rounded to SCALE, repeated points dropped, first pair absolute then differences."""
    points = unwrap(points)
    out: list[int] = []
    last: tuple[int, int] | None = None
    for lon, lat in points:
        q = (round(lon / SCALE), round(lat / SCALE))
        if q == last:
            continue
        if last is None:
            out += [q[0], q[1]]
        else:
            out += [q[0] - last[0], q[1] - last[1]]
        last = q
    return out if len(out) >= 6 else []


def area_centre(points: list[Point]) -> tuple[float, Point]:
    """Absolute area and centroid of a ring (shoelace)."""
    a = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        a += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if not a:
        return 0.0, points[0]
    return abs(a / 2), (cx / (3 * a), cy / (3 * a))


def build(topo: dict, iso: dict) -> dict:
    alpha2 = {entry["numeric"]: entry["alpha_2"] for entry in iso["3166-1"]}
    arcs = decode_arcs(topo)
    countries = []
    for geometry in topo["objects"]["countries"]["geometries"]:
        name = geometry.get("properties", {}).get("name", "")
        cc = alpha2.get(str(geometry.get("id") or ""), BY_NAME.get(name, ""))
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings, best = [], (0.0, (0.0, 0.0))
        for polygon in polygons:
            outer = ring_points(polygon[0], arcs)
            best = max(best, area_centre(outer), key=lambda item: item[0])
            rings += [r for r in (encode(ring_points(ring, arcs)) for ring in polygon) if r]
        countries.append({"cc": cc, "name": name, "c": [round(best[1][0], 1), round(best[1][1], 1)], "p": rings})
    countries.sort(key=lambda c: (c["cc"] or "~", c["name"]))
    return {"source": "Natural Earth 1:110m admin-0 countries (public domain), via world-atlas 2 (ISC)",
            "scale": SCALE, "countries": countries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topojson")
    parser.add_argument("--iso", default="/usr/share/iso-codes/json/iso_3166-1.json")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    with open(args.topojson, encoding="utf-8") as handle:
        topo = json.load(handle)
    with open(args.iso, encoding="utf-8") as handle:
        iso = json.load(handle)
    data = build(topo, iso)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="ascii") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.write("\n")
    print(f"{args.out}: {len(data['countries'])} countries, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
