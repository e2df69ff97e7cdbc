"""Maltrail-style malicious traffic detection: shared core used by sensor.py and server.py."""
