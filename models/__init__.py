"""Brevitas model zoo whose every layer takes its bits from a :class:`BitConfig`."""

from bitswarm.models.bitconfig import ALL_BITS, BitConfig, LayerBits, LayerSpec
from bitswarm.models.zoo import FINN_DESIGNS, ZOO, ZooEntry, get_model, layer_profile

__all__ = ["ALL_BITS", "FINN_DESIGNS", "BitConfig", "LayerBits", "LayerSpec", "ZOO", "ZooEntry", "get_model",
           "layer_profile"]
