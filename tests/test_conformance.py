"""Conformance corpus: every case replayed through the real `sensor.py --offline -r` command.

The contract (tests/data/conformance/manifest.json): each string in `expect` (and
`expect_rust_only`) appears in at least one event line; the listed clean cases write no event at all.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "conformance")
MANIFEST = json.load(open(os.path.join(CORPUS, "manifest.json"), encoding="utf-8"))
SILENT = {"clean_tcp", "ack_sweep_no_fp", "dns_malformed", "truncated", "whitelisted", "dns_exhaustion"}
HEURISTIC_CASES = {
    "port_scan", "stealth_scan_null", "stealth_scan_fin", "udp_scan", "infection_scan", "web_scan",
    "dns_responses", "dns_nxdomain_flood", "dns_dga_labels", "http_heuristics",
}


def replay(pcaps: list[str], log_dir: str, trails: str | None = None, extra_env: dict[str, str] | None = None,
           args: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the real sensor over capture files; return the process result and the event lines."""
    env = dict(os.environ)
    env.update({
        "MALTRAIL_TRAILS_FILE": trails or os.path.join(CORPUS, "trails.csv"),
        "MALTRAIL_LOG_DIR": log_dir,
        "MALTRAIL_DISABLE_TRAIL_UPDATES": "true",
        "MALTRAIL_USE_HEURISTICS": "true",
    })
    env.update(extra_env or {})
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", *args, "-r", *pcaps],
                            capture_output=True, text=True, env=env, timeout=120)
    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*.log"))):
        if os.path.basename(path) != "error.log":
            with open(path, encoding="utf-8") as handle:
                lines.extend(line.rstrip("\n") for line in handle)
    return result, lines


def _params():
    for case in MANIFEST:
        yield pytest.param(case, id=case["name"])


@pytest.mark.parametrize("case", list(_params()))
def test_case(case, tmp_path):
    result, lines = replay([os.path.join(CORPUS, case["pcap"])], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for expected in case["expect"] + case["expect_rust_only"]:
        assert any(expected in line for line in lines), f"{expected!r} not in {lines}"
    if case["name"] in SILENT:
        assert lines == [], lines


def test_all_cases_share_state_in_one_run(tmp_path):
    """Several -r files are replayed in order through one state; exact detections all appear."""
    cases = [c for c in MANIFEST if c["name"] in ("ip_trails", "dns_queries", "http_trails", "tls_sni")]
    result, lines = replay([os.path.join(CORPUS, c["pcap"]) for c in cases], str(tmp_path))
    assert result.returncode == 0, result.stderr
    for case in cases:
        for expected in case["expect"]:
            assert any(expected in line for line in lines), expected


def test_pure_python_paths_write_the_same_events(tmp_path):
    """The compiled accelerators (core/accel) change speed, never detections: the whole corpus in
    one run writes the same event lines with MALTRAIL_PURE_PYTHON=1 as with them."""
    from core.accel import status

    if not any(status().values()):
        pytest.skip("no accelerator is built (tools/build_accel.py)")
    pcaps = [os.path.join(CORPUS, c["pcap"]) for c in MANIFEST]
    (tmp_path / "c").mkdir()
    (tmp_path / "py").mkdir()
    fast, fast_lines = replay(pcaps, str(tmp_path / "c"))
    slow, slow_lines = replay(pcaps, str(tmp_path / "py"), extra_env={"MALTRAIL_PURE_PYTHON": "1"})
    assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
    assert len(fast_lines) > 30
    assert sorted(fast_lines) == sorted(slow_lines)
