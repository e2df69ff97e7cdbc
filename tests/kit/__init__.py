"""Shared test kit: the production sensor in memory (`SensorKit`) and the packet builder (`pcapgen`).

Where it sits: test-only, imported by tests/ and bench/. `SensorKit` (sensorkit.py) is built with
core/assemble.build_sensor, the same wiring as sensor.py, so the tests run the production event
path; `pcapgen` (pcapgen.py) builds frames and writes and reads pcap files.
"""

from tests.kit.sensorkit import T0, SensorKit

__all__ = ["T0", "SensorKit"]
