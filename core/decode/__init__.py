"""Decode stage: captured frames -> `Decoded` (addresses, ports, flags, L4 payload bounds).

Where it sits: capture -> **decode** -> protocols/detect. `packet.Decoder` is the entry point;
`link` holds the per-link-type header parsers and `guess` infers the IP offset of unknown link types.
"""

from core.decode.packet import Decoded, Decoder

__all__ = ["Decoded", "Decoder"]
