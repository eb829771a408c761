import os

import pytest

# Two cores, two xdist workers: one intra-op thread each keeps the suite fast and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("ci")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
