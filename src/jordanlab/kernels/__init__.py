"""jordanlab.kernels"""
from .tangent import DEFAULT_NTK_METHOD, NtkMethod, tangent_kernel  # noqa: E402,F401
from .path import LOSSES, PathDecomposition, PathRecorder, path_decomposition, per_example_loss  # noqa: E402,F401
from .checkpoint import CheckpointPathKernel, checkpoint_path_kernel  # noqa: E402,F401
from .attribution import (  # noqa: E402,F401
    Explanation,
    explain,
    initial_model,
    input_similarity,
    nearest_training_images,
    plot_explanation,
)
from .verify import SmoothCNN, kernel_motion, verify  # noqa: E402,F401
from .infinite import NTKConv2d, NTKLinear, cnn_kernels, mlp_kernels, ntk_cnn, ntk_mlp, width_convergence  # noqa: E402,F401
from .regression import gradient_descent_mse, kernel_regression  # noqa: E402,F401
from .attribution import explain_run  # noqa: E402,F401
from .attribution import similarity_shift  # noqa: E402,F401
from .adam_path import AdamPathDecomposition, AdamPathRecorder  # noqa: E402,F401
from .ranger_path import RangerPathDecomposition, RangerPathRecorder  # noqa: E402,F401
