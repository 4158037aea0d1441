"""Pure loss functions shared by rules and evaluations: NT-Xent (SimCLR), InfoNCE / CPC, and
SimCLRv2's distillation loss."""

from beyond_backprop.losses.distill import distillation_loss
from beyond_backprop.losses.infonce import grid_info_nce, info_nce
from beyond_backprop.losses.nt_xent import nt_xent

__all__ = ["distillation_loss", "grid_info_nce", "info_nce", "nt_xent"]
