"""jordanlab.models: the networks compared in the talk and beyond it.

``build(name, **options)`` returns a model from the registry :data:`MODELS`; every model maps
``(N, C, H, W)`` float images to ``(N, 1, H, W)`` logits on any canvas size. The optional
interfaces beyond ``forward`` are the protocols :class:`RecurrentModel`, :class:`GatedModel` and
:class:`FixedPointModel`, :class:`HeldRoundsModel` (:mod:`jordanlab.models.protocols`; a vmapped call of a
fixed-point model runs inside :func:`held_rounds`).
"""

from .automaton import AutomatonScanNet, suffix_state_scan
from .cnn import LocalCNN
from .depth import CrossingDepthNet, min_plus_scan
from .protocols import FixedPointModel, GatedModel, HeldRoundsModel, RecurrentModel, held_rounds
from .recurrent import RecurrentNet, progressive_rollout, run_until_stable
from .registry import MODELS, build, count_parameters, model_table, receptive_field
from .scan import ParityScanNet, RowScanNet, linear_scan
from .unet import UNet

__all__ = [
    "MODELS",
    "AutomatonScanNet",
    "CrossingDepthNet",
    "FixedPointModel",
    "GatedModel",
    "HeldRoundsModel",
    "LocalCNN",
    "ParityScanNet",
    "RecurrentModel",
    "RecurrentNet",
    "RowScanNet",
    "UNet",
    "build",
    "held_rounds",
    "count_parameters",
    "linear_scan",
    "min_plus_scan",
    "model_table",
    "progressive_rollout",
    "receptive_field",
    "run_until_stable",
    "suffix_state_scan",
]
