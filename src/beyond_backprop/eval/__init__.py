"""Evaluation helpers: diagnostics of a rule's updates, plots of logged metrics."""
