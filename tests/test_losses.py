"""One definition of the pixel losses: the trainer, the SGD path kernel and the Adam recorder agree."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jordanlab.kernels import LOSSES, PIXEL_LOSSES, per_example_loss
from jordanlab.train import pixel_loss
from jordanlab.train.losses import TRAIN_LOSSES, elementwise_loss, loss_derivative

values = st.lists(st.floats(-8, 8, allow_nan=False, width=64), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(values, st.data())
def test_derivative_is_the_autograd_derivative_of_the_loss(f, data):
    y = torch.tensor(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(f), max_size=len(f))),
                     dtype=torch.float64)
    for kind in LOSSES:
        z = torch.tensor(f, dtype=torch.float64, requires_grad=True)
        elementwise_loss(z, y, kind).sum().backward()
        torch.testing.assert_close(loss_derivative(z.detach(), y, kind), z.grad, rtol=1e-12, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(values)
def test_mse_means_the_same_in_training_and_in_the_kernels(f):
    z = torch.tensor(f, dtype=torch.float32)[None, None, None, :]
    y = (z > 0.3).float()
    for kind in TRAIN_LOSSES:
        train = pixel_loss(z, y, kind)
        kernel = per_example_loss(z.reshape(1, -1), y.reshape(1, -1), kind)[0]  # float32 too: one function
        assert float(train) == pytest.approx(float(kernel), rel=1e-6, abs=1e-12), kind
    # the names say what they compute
    torch.testing.assert_close(elementwise_loss(z, y, "mse"), (torch.sigmoid(z) - y) ** 2)
    torch.testing.assert_close(elementwise_loss(z, y, "mse-logits"), (z - y) ** 2)


def test_names_and_refusals():
    assert set(PIXEL_LOSSES) == set(TRAIN_LOSSES) <= set(LOSSES) and "mse-logits" in LOSSES
    with pytest.raises(ValueError, match="loss"):
        elementwise_loss(torch.zeros(1), torch.zeros(1), "hinge")
    with pytest.raises(ValueError, match="kind"):
        pixel_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "mse-logits")  # not a training loss
