"""dataplane: DataPlane.org signal lists (DNS, SIP, SMTP, SSH, VNC abuse seen by its sensors).

Source: https://dataplane.org/ (one list per signal; see URLS below)
Terms: free for use (DataPlane.org terms: non-commercial and commercial use allowed with attribution).
Format: `ASN | ASname | ipaddr | lastseen | category` with `#` comments.
Category: `known attacker` trails (IPv4). A signal list that fails is skipped; the feed fails only when all do.
"""

from core.update.feeds import FeedError, content_lines, is_ipv4

__url__ = "https://dataplane.org/sshpwauth.txt"
__check__ = "DataPlane.org"
__info__ = "known attacker"
__reference__ = "dataplane.org"
SIGNALS = ("dnsrd", "dnsrdany", "dnsversion", "sipinvitation", "sipquery", "sipregistration",
           "smtpdata", "smtpgreet", "sshclient", "sshpwauth", "vncrfb")
URLS = tuple(f"https://dataplane.org/{name}.txt" for name in SIGNALS)


def fetch(ctx):
    trails = {}
    errors = []
    for url in URLS:
        try:
            text = ctx.retrieve(url, __check__)
        except FeedError as ex:
            errors.append(f"{url}: {ex}")
            continue
        for line in content_lines(text):
            parts = [part.strip() for part in line.split("|")]
            if len(parts) >= 3 and is_ipv4(parts[2]):
                trails[parts[2]] = (__info__, __reference__)
    if errors and len(errors) == len(URLS):
        raise FeedError(errors[0])
    return trails
