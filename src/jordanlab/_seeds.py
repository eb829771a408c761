"""The seed derivations of jordanlab, each defined once.

Two recipes, both pure functions of their integer arguments (no global RNG state):

- :func:`torch_seed`: a torch generator seed for stream ``stream`` of a run seeded ``seed``,
  ``seed · 1 000 003 + stream`` (1 000 003 is prime, so distinct ``(seed, stream)`` pairs with
  ``0 ≤ stream < 1 000 003`` give distinct seeds). Used for the epoch permutations, the progressive
  loss's draws, the thesis networks and the Arora check's initialisations.
- :func:`numpy_rng`: a NumPy generator for the key ``(seed, *keys)``, through
  ``numpy.random.default_rng([seed, *keys])`` (NumPy's ``SeedSequence`` hashes the whole key, so the
  streams are independent for any keys). Image ``i`` of a dataset split is ``numpy_rng(seed, salt, i)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["numpy_rng", "torch_seed"]

_PRIME = 1_000_003


def torch_seed(seed: int, stream: int) -> int:
    """``seed · 1 000 003 + stream``: the torch seed of stream ``stream`` of a run seeded ``seed``.

    Examples
    --------
    >>> torch_seed(0, 7), torch_seed(2, 5)
    (7, 2000011)
    """
    return int(seed) * _PRIME + int(stream)


def numpy_rng(seed: int, *keys: int) -> np.random.Generator:
    """``numpy.random.default_rng([seed, *keys])``: the generator of key ``(seed, *keys)``.

    Examples
    --------
    >>> bool(numpy_rng(0, 1, 2).integers(1 << 30) == np.random.default_rng([0, 1, 2]).integers(1 << 30))
    True
    """
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])
