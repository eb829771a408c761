"""jordanlab.train.config: strict TOML configs, overrides, round trips, and every shipped config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jordanlab.train import (
    Config,
    ConfigError,
    ConfigTypeError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_talks_recipe():
    c = Config()
    assert (c.optim.name, c.train.loss, c.train.batch_size, c.train.epochs) == ("ranger", "bce", 32, 150)
    assert c.model.name == "unet"


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, "[train]\nepochz = 3\n")
    with pytest.raises(ConfigError, match=r"'train\.epochz'.*c\.toml"):
        load_config(p)


def test_unknown_table_names_key(tmp_path):
    p = _write(tmp_path, "[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match="'trian'"):
        load_config(p)


def test_wrong_type_names_key_and_is_type_error(tmp_path):
    p = _write(tmp_path, '[train]\nepochs = "many"\n')
    with pytest.raises(TypeError, match=r"'train\.epochs'.*expected an integer"):
        load_config(p)
    p = _write(tmp_path, "[train]\namp = 1\n")
    with pytest.raises(ConfigTypeError, match=r"'train\.amp'"):
        load_config(p)
    p = _write(tmp_path, "[optim]\nbetas = [0.9]\n")
    with pytest.raises(ConfigTypeError, match=r"'optim\.betas'"):
        load_config(p)


def test_int_is_accepted_for_float_but_bool_is_not_int(tmp_path):
    assert load_config(_write(tmp_path, "[optim]\nlr = 1\n")).optim.lr == 1.0
    with pytest.raises(ConfigTypeError, match=r"'train\.epochs'"):
        load_config(_write(tmp_path, "[train]\nepochs = true\n"))


def test_bad_choice_and_range_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim\.name'.*ranger, adam, sgd"):
        load_config(_write(tmp_path, '[optim]\nname = "lamb"\n'))
    with pytest.raises(ConfigError, match=r"'train\.batch_size'.*>= 1"):
        load_config(_write(tmp_path, "[train]\nbatch_size = 0\n"))
    with pytest.raises(ConfigError, match=r"'optim\.lr'"):
        load_config(_write(tmp_path, "[optim]\nlr = 0.0\n"))


def test_invalid_toml_names_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[train\n"))
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_overrides_apply_and_are_checked(tmp_path):
    p = _write(tmp_path, '[data]\npreset = "shapes-128"\n[model]\nname = "unet"\n')
    c = load_config(p, ["train.epochs=3", "data.preset=shapes-32", "model.kwargs.width=4",
                        "optim.betas=[0.9, 0.99]", 'description="x y"'])
    assert c.train.epochs == 3 and c.data.preset == "shapes-32"
    assert c.model.kwargs == {"width": 4} and c.optim.betas == (0.9, 0.99) and c.description == "x y"
    with pytest.raises(ConfigError, match=r"'train\.epoch'.*overrides"):
        load_config(p, ["train.epoch=3"])
    with pytest.raises(ConfigTypeError, match=r"'train\.epochs'"):
        load_config(p, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(p, ["train.epochs"])
    with pytest.raises(ConfigError, match="is a value, not a table"):
        load_config(p, ["train.epochs=3", "train.epochs.x=1"])


def test_later_override_wins(tmp_path):
    c = load_config(_write(tmp_path, ""), ["train.epochs=3", "train.epochs=5"])
    assert c.train.epochs == 5


_cfg = st.builds(
    Config,
    description=st.text(max_size=20),
    data=st.builds(DataConfig, preset=st.sampled_from(["shapes-32", "textures-256"]),
                   dir=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
                   n_train=st.one_of(st.none(), st.integers(1, 10**6)), seed=st.integers(0, 2**31),
                   augment=st.booleans()),
    model=st.builds(ModelConfig, name=st.sampled_from(["unet", "recurrent"]),
                    kwargs=st.dictionaries(st.sampled_from(["width", "depth", "norm", "directions"]),
                                           st.one_of(st.integers(1, 64), st.sampled_from(["none", "batch"]),
                                                     st.lists(st.sampled_from(["right", "left"]), max_size=2)))),
    optim=st.builds(OptimConfig, name=st.sampled_from(["ranger", "adam", "sgd"]),
                    lr=st.floats(1e-8, 10.0), betas=st.tuples(st.floats(0, 0.999), st.floats(0, 0.9999)),
                    schedule=st.sampled_from(["constant", "cosine"])),
    train=st.builds(TrainConfig, epochs=st.integers(1, 1000), batch_size=st.integers(1, 512),
                    device=st.sampled_from(["cpu", "cuda", "auto"]), loss=st.sampled_from(["bce", "mse"]),
                    objective=st.sampled_from(["standard", "progressive"]),
                    progressive_alpha=st.floats(0, 1)),
)


@given(_cfg)
def test_round_trip_dict_and_toml_and_json(tmp_path_factory, cfg):
    d = tmp_path_factory.mktemp("rt")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert load_config(save_config(cfg, d / "c.toml")) == cfg
    assert config_from_dict(json.loads(save_config(cfg, d / "c.json").read_text())) == cfg


def test_save_config_rejects_other_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        save_config(Config(), tmp_path / "c.yaml")


def test_there_are_shipped_configs():
    names = {p.name for p in CONFIGS}
    expected = {"talk-shapes128-unet.toml", "talk-textures256-unet.toml", "quick-unet.toml",
                "quick-recurrent.toml", "quick-scan.toml"}
    expected |= {f"talk-shapes128-{m}.toml" for m in ("local-cnn", "cnn-gap", "cnn-sa", "cnn-gc")}
    expected |= {f"quick-{m}.toml" for m in ("local-cnn", "cnn-gap", "cnn-sa", "cnn-gc")}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_resolves_and_builds(path):
    cfg = load_config(path)
    assert cfg.description, f"{path.name} has no description"
    from jordanlab import models

    model = models.build(cfg.model.name, **cfg.model.kwargs)  # catches typos in [model.kwargs]
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.train.objective == "progressive":
        from jordanlab.train import is_recurrent

        assert is_recurrent(model), f"{path.name}: progressive objective needs a recurrent model"


def test_gate_penalty_keys_are_checked(tmp_path):
    c = load_config(_write(tmp_path, "[train]\ngate_penalty = 0.05\ngate_penalty_start = 7\ngate_penalty_full = 14\n"
                           "[optim]\nschedule = \"onecycle\"\n"))
    assert (c.train.gate_penalty, c.train.gate_penalty_start, c.train.gate_penalty_full) == (0.05, 7, 14)
    assert c.optim.schedule == "onecycle"
    with pytest.raises(ConfigError, match=r"'train\.gate_penalty'.*>= 0"):
        load_config(_write(tmp_path, "[train]\ngate_penalty = -1\n"))
    with pytest.raises(ConfigError, match=r"'train\.gate_penalty_full'.*>= train\.gate_penalty_start = 9"):
        load_config(_write(tmp_path, "[train]\ngate_penalty_start = 9\ngate_penalty_full = 3\n"))
    with pytest.raises(ConfigError, match=r"'train\.gate_penalty'.*standard objective"):
        load_config(_write(tmp_path, "[train]\ngate_penalty = 0.1\nobjective = \"progressive\"\n"))
    with pytest.raises(ConfigError, match=r"'optim\.schedule'.*onecycle"):
        load_config(_write(tmp_path, "[optim]\nschedule = \"triangle\"\n"))


def test_quick_parity_scan_config_is_the_prototype_recipe():
    """2,000 images, batch 32, 32 epochs = 2,016 steps; warm-up 10 %; penalty ramp 35 % → 70 % of the steps."""
    from jordanlab import models
    from jordanlab.train.objectives import has_gates

    path = Path(__file__).resolve().parents[1] / "configs" / "quick-parity-scan.toml"
    cfg = load_config(path)
    steps = cfg.train.epochs * -(-cfg.data.n_train // cfg.train.batch_size)
    assert steps == 2016
    assert (cfg.optim.name, cfg.optim.schedule, cfg.optim.lr) == ("adam", "onecycle", 5e-3)
    assert cfg.optim.warmup_steps == round(0.1 * steps)
    assert (cfg.train.gate_penalty_start, cfg.train.gate_penalty_full) == (round(0.35 * steps), round(0.7 * steps))
    for path in CONFIGS:
        c = load_config(path)
        if c.train.gate_penalty > 0:
            assert has_gates(models.build(c.model.name, **c.model.kwargs)), path.name
