"""Threat-intel import: INTEL_SOURCES (TAXII 2.1, MISP feeds, MISP REST, STIX 2.1 bundles) -> trails.

Where it sits: update (core/update/orchestrate.py) -> **intel** (run.py runs the sources; one module
per kind: taxii.py, misp_feed.py, misp.py, stix.py; pattern.py and mapping.py turn indicators into
trail keys and info; warninglists.py drops known-good values) -> merge -> trails.csv.
docs/intel.md describes the configuration, the mapping and the filter.
"""
