"""Engines: where and when blocks run. ``trainer.Trainer`` is the one training loop; it drives
a step object (``protocol.Step``): one process (``local.LocalEngine``) or one stage of many
(``local.StageEngine``), under the schedule ``engine.schedule`` names (``schedules/``).

Import engines from their modules; this package init stays empty.
"""
