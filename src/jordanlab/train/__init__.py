"""jordanlab.train: typed TOML configs, the training loop, checkpoints and DDP.

- :func:`load_config` / :class:`Config`: strict nested config (unknown keys and wrong types fail
  and name the key and file); :func:`save_config`, :func:`config_to_dict`.
- :func:`train`: the talk's recipe by default (Ranger, BCE on logits, batch 32, 150 epochs),
  deterministic by seed, resumable bit-for-bit on CPU, the same under ``torchrun``.
- :func:`save_checkpoint`, :func:`load_checkpoint` (SHA-256 verified), :func:`latest_good_checkpoint`,
  :func:`load_model` (rebuilds the model from the saved config alone).
- :func:`build_objective`: the per-pixel loss or the progressive loss (Bansal et al. 2022).
"""

from .checkpoint import (
    FORMAT_VERSION,
    CheckpointWarning,
    CorruptCheckpointError,
    build_model,
    checkpoint_path,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model,
    save_checkpoint,
    unwrap_model,
)
from .config import (
    Config,
    ConfigError,
    ConfigTypeError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    load_config,
    save_config,
)
from .distributed import DistContext, EpochSampler, resolve_device, setup_distributed, teardown_distributed
from .loop import NonFiniteLossError, StepHook, train
from .objectives import (
    ProgressiveObjective,
    ProgressiveUnroll,
    StandardObjective,
    build_objective,
    is_recurrent,
    pixel_loss,
)
from .optim import build_optimizer, learning_rate

__all__ = [
    "FORMAT_VERSION", "CheckpointWarning", "CorruptCheckpointError", "build_model", "checkpoint_path",
    "latest_good_checkpoint", "list_checkpoints", "load_checkpoint", "load_model", "save_checkpoint",
    "unwrap_model", "Config", "ConfigError", "ConfigTypeError", "DataConfig", "ModelConfig", "OptimConfig",
    "TrainConfig", "config_from_dict", "config_to_dict", "config_to_toml", "load_config", "save_config",
    "DistContext", "EpochSampler", "resolve_device", "setup_distributed", "teardown_distributed",
    "NonFiniteLossError", "StepHook", "train", "ProgressiveObjective", "ProgressiveUnroll", "StandardObjective",
    "build_objective", "is_recurrent", "pixel_loss", "build_optimizer", "learning_rate",
]
