"""Pure loss functions shared by rules: NT-Xent (SimCLR) and InfoNCE / CPC."""

from beyond_backprop.losses.infonce import grid_info_nce, info_nce
from beyond_backprop.losses.nt_xent import nt_xent

__all__ = ["grid_info_nce", "info_nce", "nt_xent"]
