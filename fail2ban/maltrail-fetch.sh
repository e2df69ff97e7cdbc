#!/bin/sh
# Feed the current /fail2ban list to the file the maltrail jail watches. Run it every minute.
# MALTRAIL_URL defaults to the local server; the caller's address must be in FAIL2BAN_ALLOWLIST.
#
# An address is appended when it is new, or again once MALTRAIL_REBAN_AFTER seconds (default 3600,
# the jail's bantime) have passed since it was last appended and it is still listed; so the file
# grows by what changed, not by the whole list every minute. The last-appended times live in
# "<file>.state". When the file passes MALTRAIL_MAX_BYTES (default 1 MiB) it is emptied before the
# append (fail2ban's polling backend takes that as a rotation).
set -eu
URL="${MALTRAIL_URL:-http://127.0.0.1:8338}/fail2ban"
OUT="${1:-/var/log/maltrail/fail2ban.list}"
STATE="$OUT.state"
REBAN_AFTER="${MALTRAIL_REBAN_AFTER:-3600}"
MAX_BYTES="${MALTRAIL_MAX_BYTES:-1048576}"
NOW="${MALTRAIL_NOW:-$(date +%s)}"
TMP=$(mktemp)
NEXT=$(mktemp)
trap 'rm -f "$TMP" "$NEXT"' EXIT
curl -fsS --max-time 20 "$URL" -o "$TMP" || exit 0
touch "$STATE" "$OUT"
if [ "$(wc -c < "$OUT")" -gt "$MAX_BYTES" ]; then
    : > "$OUT"
fi
# only lines that are a bare IPv4/IPv6 address reach the jail; the state keeps listed addresses only
grep -E '^[0-9A-Fa-f:.]+$' "$TMP" | awk -v now="$NOW" -v after="$REBAN_AFTER" -v next_state="$NEXT" '
    FILENAME == ARGV[1] { last[$1] = $2; next }
    seen[$1]++ { next }
    {
        when = ($1 in last) ? last[$1] : ""
        if (when == "" || now - when >= after) { print $1; when = now }
        print $1, when > next_state
    }
' "$STATE" - >> "$OUT"
mv "$NEXT" "$STATE"
