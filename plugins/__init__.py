"""Sensor plugins: modules defining plugin(event_tuple, packet), loaded with -p or PLUGINS."""
