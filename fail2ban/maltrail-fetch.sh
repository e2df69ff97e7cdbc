#!/bin/sh
# Append the current /fail2ban list to the file the maltrail jail watches. Run it every minute.
# MALTRAIL_URL defaults to the local server; the caller's address must be in FAIL2BAN_ALLOWLIST.
set -eu
URL="${MALTRAIL_URL:-http://127.0.0.1:8338}/fail2ban"
OUT="${1:-/var/log/maltrail/fail2ban.list}"
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
if curl -fsS --max-time 20 "$URL" -o "$TMP"; then
    # only lines that are a bare IPv4/IPv6 address reach the jail
    grep -E '^[0-9A-Fa-f:.]+$' "$TMP" >> "$OUT" || true
fi
