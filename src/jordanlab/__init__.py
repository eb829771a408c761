"""jordanlab: can a neural network learn planar topology?

Layers, in the direction data flows: ``curves`` (continuous closed curves and their
rasterization), ``topology`` (the exact fill), ``data`` (presets, suites, datasets),
``models``, ``train``, ``evaluate``, ``kernels`` (tangent, path and infinite-width
kernels), ``experiments`` (the kernel pipelines over runs) and ``report``.
"""

__version__ = "0.1.0"
