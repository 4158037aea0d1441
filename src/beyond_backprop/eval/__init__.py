"""Evaluations of finished runs: offline linear probes, SimCLRv2's fine-tuning and
distillation, plots of logged metrics."""
