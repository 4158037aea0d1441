"""A run: its directory, its engine, its records (``run.session.run`` does all of it)."""

from beyond_backprop.run.session import RunResult, resume_run, run, start_run

__all__ = ["RunResult", "resume_run", "run", "start_run"]
