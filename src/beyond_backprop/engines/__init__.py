"""Engines: where and when blocks run (``engines.local.LocalEngine``: one process).

Import engines from their modules; this package init stays empty so that the config schema
can import ``engines.config`` and ``engines.optim`` without pulling in the engines.
"""
