"""Networks as stacks of blocks, and the architecture registry."""

import beyond_backprop.models.hierarchical  # noqa: F401  (registers "hierarchical")
from beyond_backprop.models import cifar_cnn, cnn, mlp, resnet, simulated, vgg
from beyond_backprop.models.registry import ARCHITECTURES, build_model, register_architecture
from beyond_backprop.models.stack import BlockStack

__all__ = [
    "ARCHITECTURES",
    "BlockStack",
    "build_model",
    "cifar_cnn",
    "cnn",
    "mlp",
    "register_architecture",
    "resnet",
    "simulated",
    "vgg",
]
