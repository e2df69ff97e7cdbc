"""vxvault: VX Vault: latest malware download URLs.

Source: http://vxvault.net/URL_List.php
Terms: free public list (vxvault.net).
Format: a title line, then one URL a line.
Category: `malware` trails (urls).
"""

from core.update.feeds import urls_in_lines

__url__ = "http://vxvault.net/URL_List.php"
__check__ = "http"
__info__ = "malware"
__reference__ = "vxvault.net"


def fetch(ctx):
    return urls_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
