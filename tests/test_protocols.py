"""The models' optional interfaces are explicit protocols, and every consumer asks them the same way."""

from __future__ import annotations

import pytest
import torch

from jordanlab.models import MODELS, FixedPointModel, GatedModel, RecurrentModel, build
from jordanlab.train.objectives import has_gates, is_recurrent

#: Which registry models offer which interface (the registry's own claims, written down once).
EXPECTED = {
    "recurrent": {RecurrentModel},
    "parity-scan": {GatedModel},
    "automaton-scan": {GatedModel},
    "crossing-depth": {GatedModel, FixedPointModel},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_registry_model_offers_exactly_its_interfaces(name):
    torch.manual_seed(0)
    model = build(name)
    offered = {p for p in (RecurrentModel, GatedModel, FixedPointModel) if isinstance(model, p)}
    assert offered == EXPECTED.get(name, set()), name
    assert is_recurrent(model) == (RecurrentModel in offered)
    assert has_gates(model) == (GatedModel in offered)


@pytest.mark.parametrize("name", sorted(n for n, ps in EXPECTED.items() if GatedModel in ps))
def test_gated_models_forward_is_readout_of_gates(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = (torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    with torch.no_grad():
        a = model.gates(x)
        torch.testing.assert_close(model(x), model.readout(x, a))
        assert model.gate_penalty(a).ndim == 0


def test_a_module_with_attributes_of_those_names_but_no_methods_is_not_recurrent():
    class Half(torch.nn.Module):
        def init_state(self, x):
            return x

        def step(self, x, s):
            return s

    assert not isinstance(Half(), RecurrentModel) and not is_recurrent(Half())
