"""Container health check: the server answers GET /ping with "pong" (exit 0), else exit 1."""

import os
import sys
import urllib.request

port = os.environ.get("MALTRAIL_HTTP_PORT", "8338")
scheme = "https" if os.environ.get("MALTRAIL_USE_SSL", "").lower() in ("1", "true", "yes", "on") else "http"
try:
    import ssl

    context = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323 - local self-check
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/ping", timeout=4, context=context) as reply:  # noqa: S310
        sys.exit(0 if reply.read().strip() == b"pong" else 1)
except OSError:
    sys.exit(1)
