"""The detect stage: decoded packets and parsed protocol records -> trail lookups and heuristic hooks -> events.

Where it sits: capture -> decode -> protocols -> **detect** -> events. Modules: detector.py (the
per-packet orchestration, `Detector`), domains.py (the domain check order with its answer cache),
urls.py (URL candidates, markers and the `UrlChecker`).
"""
