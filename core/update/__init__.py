"""The trail update stage: feeds, static and custom lists -> merged, filtered trails.csv, published atomically.

Where it sits: feeds/static/custom -> **update** -> trails.csv -> trail store. Modules, one job each:
orchestrate.py (the run: sources in order, merge, publish, summary), cli.py (`python3 -m core.update`),
feedrun.py (runs the feed modules), feeds.py (shared fetching and parsers for feed modules),
merge.py (merge rules and final filters), publish.py (atomic publication, the size rule, health
report) and geo.py (RIR country tables). Nothing is imported here, so importing one module (the
server reads geo.py) does not pull in the feed client.
"""
