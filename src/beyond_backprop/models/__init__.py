"""Networks as stacks of blocks, and the architecture registry."""

from beyond_backprop.models import cnn, mlp
from beyond_backprop.models.registry import ARCHITECTURES, build_model, register_architecture
from beyond_backprop.models.stack import BlockStack

__all__ = ["ARCHITECTURES", "BlockStack", "build_model", "cnn", "mlp", "register_architecture"]
