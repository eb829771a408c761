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
