"""beyond-backprop: train neural networks without end-to-end back-propagation, block by block
and layer-parallel."""

__version__ = "0.1.0"
