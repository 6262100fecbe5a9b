"""The `layers` space (Zoph & Le 2017 macro search, generalised) — config only for now."""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.errors import require

OPERATIONS = ("conv", "sepconv", "maxpool", "avgpool", "identity")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
AUGMENTATIONS = ("none", "light", "strong")


@dataclass(frozen=True)
class LayersConfig:
    """Choices of the `layers` space. Each list is the set of values a decision may take."""

    num_layers: int = 6
    """Layers in the child (Zoph & Le searched 6 to 24 layers)."""
    operations: tuple[str, ...] = OPERATIONS
    """Operation of each layer; conv and sepconv take filters, kernel and activation."""
    filters: tuple[int, ...] = (16, 32, 64)
    """Filters (units for flat inputs) of each layer (Zoph & Le: 24, 36, 48, 64)."""
    kernel_sizes: tuple[int, ...] = (3, 5)
    """Kernel (or pool) size of each layer (Zoph & Le: 1, 3, 5, 7)."""
    strides: tuple[int, ...] = (1, 2)
    """Stride of each layer; strides that would shrink the input below 1 are masked."""
    activations: tuple[str, ...] = ("relu", "swish", "tanh")
    """Activation of each conv layer."""
    skip_connections: bool = True
    """Let each layer also take the outputs of any earlier layer (anchor points)."""
    merges: tuple[str, ...] = ("add", "concat")
    """How a layer merges its extra inputs: add (after a 1x1 projection) or concat."""
    learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    optimizers: tuple[str, ...] = ("adam", "rmsprop", "sgd")
    dropouts: tuple[float, ...] = (0.0, 0.2, 0.4)
    weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    augmentations: tuple[str, ...] = AUGMENTATIONS
    """Data augmentation strength (the family depends on the input kind)."""

    def __post_init__(self) -> None:
        require(1 <= self.num_layers <= 64, "num_layers", self.num_layers, "an integer in 1..64")
        for name, valid in (
            ("operations", OPERATIONS),
            ("optimizers", OPTIMIZERS),
            ("augmentations", AUGMENTATIONS),
            ("merges", ("add", "concat")),
        ):
            for v in getattr(self, name):
                require(v in valid, name, v, "values among " + ", ".join(valid))
        for name in ("filters", "kernel_sizes", "strides", "batch_sizes"):
            for v in getattr(self, name):
                require(v >= 1, name, v, "integers >= 1")
        for v in self.learning_rates:
            require(v > 0, "learning_rates", v, "numbers > 0")
        for name in ("dropouts",):
            for v in getattr(self, name):
                require(0 <= v < 1, name, v, "values in [0, 1)")
        for v in self.weight_decays:
            require(v >= 0, "weight_decays", v, "numbers >= 0")
