"""jordanlab.kernels"""
from .tangent import DEFAULT_NTK_METHOD, NtkMethod, tangent_kernel  # noqa: E402,F401
from .path import LOSSES, PathDecomposition, PathRecorder, path_decomposition, per_example_loss  # noqa: E402,F401
