"""jordanlab.topology: the exact fill of rasterized closed curves, its validation, programmed nets.

Public names
------------
fill, FillMethod, DEFAULT_FILL_METHOD
    Even-odd figure mask of boundary images (crossing parity, or flood as a cross-check).
crossing_parity, flood_depth_parity
    The two implementations behind :func:`fill`.
validate, InvalidBoundaryError
    Check that a boundary image is a set of non-touching closed curves; say what is wrong.
repair, Repair
    Make a hand drawing valid where only small defects are wrong: fill pinholes, join gaps, thin.
PropagationNet, ScanNet, propagation_steps, PropagationResult
    Programmed (fixed-weight) networks computing the same mask: local propagation, and row scan.
"""

from jordanlab.topology._fill import (
    DEFAULT_FILL_METHOD,
    FillMethod,
    crossing_parity,
    fill,
    flood_depth_parity,
)
from jordanlab.topology._validate import InvalidBoundaryError, validate
from jordanlab.topology.repair import Repair, repair
from jordanlab.topology.programmed import PropagationNet, PropagationResult, ScanNet, propagation_steps

__all__ = [
    "DEFAULT_FILL_METHOD",
    "FillMethod",
    "crossing_parity",
    "fill",
    "flood_depth_parity",
    "InvalidBoundaryError",
    "validate",
    "Repair",
    "repair",
    "PropagationNet",
    "PropagationResult",
    "ScanNet",
    "propagation_steps",
]
