"""jordanlab.kernels: the kernel lens on trained networks, as a library of tensors in, tensors out.

- :func:`tangent_kernel` (:class:`NtkMethod`): the empirical neural tangent kernel, per pixel or traced.
- :func:`path_decomposition`, :class:`PathRecorder`: Domingos' exact path-kernel decomposition of an
  (S)GD run, f(w_T, x) = f(w_0, x) + Σ_i contributions_i (+ a floating-point residual);
  :func:`per_example_loss` and :data:`LOSSES` name the losses it differentiates.
- :class:`AdamPathRecorder`: the same bookkeeping for a real Adam run (:func:`check_adam`);
  :class:`RangerPathRecorder` for a real ``pytorch_optimizer.Ranger`` run (:func:`check_ranger`), both exact
  across ReLU/max-pool kinks (``kernels._segments``); :class:`AdjointPathRecorder`, the same numbers by a
  backward sweep over steps stored on disk (O(T (Q+1) P) instead of the O(N P) per-example shares).
- :func:`checkpoint_path_kernel`: the TracInCP approximation Σ_c η_c ∇f(w_c, x)·∇f(w_c, x');
  :func:`tracin_cp`: TracInCP scores −Σ_c η_c ∇f(w_c, x_q)·∇ℓ(w_c, z_i) of all N examples by one jvp per checkpoint.
- :func:`explain`, :func:`input_similarity`, :func:`nearest_training_images`, :func:`similarity_shift`:
  attribution of one output pixel to training images, and Charpiat et al.'s normalized tangent kernel.
- :func:`mlp_kernels`, :func:`cnn_kernels`, :func:`width_convergence` and the NTK-parameterized layers:
  closed-form infinite-width NNGP/NTK kernels.
- :func:`kernel_regression`, :func:`kernel_regression_min_ridge`, :func:`gradient_descent_mse`,
  :func:`discrete_gradient_descent_mse`: prediction with a fixed kernel.

The pipelines over runs (``kernel verify``, ``thesis``, ``infinite-check``, ``explain``,
``explain-adam``) are in :mod:`jordanlab.experiments`; their old names here (``verify``,
``explain_run``, ``initial_model``, ...) still resolve, importing that package on first use.
"""

from .adam_path import PIXEL_LOSSES, AdamPathDecomposition, AdamPathRecorder, check_adam
from .adjoint_path import AdjointPathDecomposition, AdjointPathRecorder, PixelMaps
from .attribution import Explanation, explain, input_similarity, nearest_training_images, similarity_shift, tracin_cp
from .checkpoint import CheckpointPathKernel, checkpoint_path_kernel
from .infinite import NTKConv2d, NTKLinear, cnn_kernels, mlp_kernels, ntk_cnn, ntk_mlp, width_convergence
from .path import LOSSES, PathDecomposition, PathRecorder, path_decomposition, per_example_loss
from .ranger_path import RangerPathDecomposition, RangerPathRecorder, check_ranger
from .regression import (
    discrete_gradient_descent_mse,
    gradient_descent_mse,
    kernel_regression,
    kernel_regression_min_ridge,
)
from .tangent import DEFAULT_NTK_METHOD, NtkMethod, tangent_kernel

__all__ = [
    "DEFAULT_NTK_METHOD", "LOSSES", "PIXEL_LOSSES", "AdamPathDecomposition", "AdamPathRecorder",
    "AdjointPathDecomposition", "AdjointPathRecorder", "CheckpointPathKernel", "Explanation", "NTKConv2d", "NTKLinear", "NtkMethod", "PathDecomposition", "PixelMaps",
    "PathRecorder", "RangerPathDecomposition", "RangerPathRecorder", "check_adam", "check_ranger", "checkpoint_path_kernel", "cnn_kernels", "discrete_gradient_descent_mse",
    "explain", "gradient_descent_mse", "input_similarity", "kernel_regression", "kernel_regression_min_ridge",
    "mlp_kernels", "nearest_training_images", "ntk_cnn", "ntk_mlp", "path_decomposition", "per_example_loss",
    "similarity_shift", "tangent_kernel", "tracin_cp", "width_convergence",
]

#: Names that moved to :mod:`jordanlab.experiments` (resolved lazily, so importing the kernels never
#: imports the experiments above them).
_MOVED = frozenset({
    "SmoothCNN", "kernel_motion", "verify", "explain_run", "initial_model", "plot_explanation",
    "run_thesis", "infinite_check", "arora_check", "ThesisConfig", "PointReadout", "Query",
    "explain_adam_run", "plot_adam_explanation", "concentration",
})


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module("jordanlab.experiments"), name)
    raise AttributeError(f"module 'jordanlab.kernels' has no attribute {name!r}")
