"""The feed server of the test kit (tests/kit/feedserver.py) serves the saved samples as feeds get them."""

from __future__ import annotations

from tests.kit.feedserver import FeedServer, sample_path


def test_server_serves_samples_gzip_encoded() -> None:
    import requests

    with FeedServer() as server:
        response = requests.get(f"{server.base_url}/ciarmy/x", timeout=5)
        assert response.headers["Content-Encoding"] == "gzip"
        with open(sample_path("ciarmy") or "", "rb") as handle:
            assert response.content == handle.read()
        assert requests.get(f"{server.base_url}/no-such-feed/x", timeout=5).status_code == 404
