"""The server tier: UDP event intake from sensors, day files, the authenticated HTTP API and the web client
(core/server/app.py wires it; server.py is its command line)."""
