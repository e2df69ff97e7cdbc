"""One module per public feed (see docs/trails.md for the contract).

Where it sits: core/update/feedrun.py (run by core/update/) discovers every `*.py` here (not starting
with `_`), and calls each module's `fetch(ctx)` with a `core.update.feeds.FeedContext`; the result
`{trail: (info, reference)}` is merged into trails.csv. Module attributes: `__url__`, `__check__`,
`__info__`, `__reference__` (and optionally `__api_key__`, `__max_size__`).
"""
