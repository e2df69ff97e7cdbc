"""Protocol parsers: L4 payload bytes -> small records (DNS, HTTP, TLS, QUIC).

Where it sits: between decode (which hands over `buf[poff:pend]`) and detect (which looks the
extracted names, paths, agents and certificate hashes up in the trail store). Parsers never raise
on any input, never know about trails and keep no module-level state; the only stateful piece is
`tls.ServerFlights`, an object the pipeline owns. See docs/protocols.md.
"""
