"""Sensor operations: metrics, preflight (-T), detection self-test, trail reload."""
