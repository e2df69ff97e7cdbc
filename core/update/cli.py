"""The trail update's command line: `python3 -m core.update [-c CONF] [--offline] [--force] ...`.

Where it sits: the entry of the update stage (core/update/orchestrate.py runs it); also started as a
child process by the sensor's refresh timer (core/ops/reload.py) and by tools/run_all.py. Exit 0
when the trails file is current (published now or already up to date), 1 otherwise, 2 on a bad
configuration (or, from __main__.py, missing packages: core/ops/deps.py).
"""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError, fail, load_config
from core.update.feedrun import discover_feeds, load_feed
from core.update.orchestrate import UpdateStatus, update


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m core.update", description="Rebuild trails.csv from feeds, "
                                     "static and custom trails (or pull it from UPDATE_SERVER).")
    parser.add_argument("-c", dest="config", help="configuration file (default: maltrail.conf)")
    parser.add_argument("--offline", action="store_true", help="static and custom trails only, no network")
    parser.add_argument("--force", action="store_true",
                        help="rebuild now, run the feeds even without USE_FEED_UPDATES, publish even a small set")
    parser.add_argument("--feed-base-url", help="fetch every feed from <URL>/<feed>/<quoted original URL> "
                        "(local mirrors, tests, benchmarks)")
    parser.add_argument("--no-geo", action="store_true", help="do not refresh the country table")
    parser.add_argument("--list-feeds", action="store_true", help="print the feed modules and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as ex:
        return fail(ex)
    if args.list_feeds:
        for name in discover_feeds():
            module = load_feed(name)
            print(f"{name:28} {getattr(module, '__info__', ''):40} {getattr(module, '__url__', '')}")
        return 0
    result = update(config, force=args.force, offline=args.offline, base_url=args.feed_base_url,
                    geo=not args.no_geo, printer=print, progress=sys.stdout.isatty())
    if result.status is UpdateStatus.UP_TO_DATE:
        print(result.message)
    return 0 if result.ok else 1
