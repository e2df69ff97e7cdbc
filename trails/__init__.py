"""Trail sources: trails/feeds/ (public feeds), trails/static/ (bundled lists), trails/custom/ (user).

Where it sits: read by core/update/, which merges them into trails.csv (see docs/trails.md).
"""
