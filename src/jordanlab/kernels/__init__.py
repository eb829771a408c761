"""jordanlab.kernels"""
from .tangent import DEFAULT_NTK_METHOD, NtkMethod, tangent_kernel  # noqa: E402,F401
