"""Trails: the indicator sets the sensor matches traffic against.

store.py answers lookups over the mmap'd index that build.py builds from trails.csv; index.py
holds the file format and the key rules both share; whitelist.py holds the known-good side. The
update that writes trails.csv from feeds, static and custom lists lives in core/update/.
"""
