"""jordanlab.curves: continuous closed curves and their rasterization into simple closed 8-curves.

Families (one module each) take ``rng`` and a canvas ``size`` and return vertices ``(K, 2)`` of
``(x, y)`` (pixel ``(row, col)`` centre at ``x=col, y=row``), fitting the canvas with a margin:
:func:`blob`, :func:`polygon`, :func:`spiral`, :func:`random_walk`; compositions return lists:
:func:`multi`, :func:`nested`, :func:`texture`; :func:`simple_shape` is the training family
(blob or polygon); :func:`blobs`, :func:`polygons` and :func:`simple_shapes` draw many at once.
:func:`affine` distorts the geometry before :func:`rasterize`, so labels stay exact.
"""

from jordanlab.curves.affine import affine, apply_affine, random_affine_matrix
from jordanlab.curves.blob import blob, blobs
from jordanlab.curves.compose import multi, nested, simple_shape, simple_shapes, texture
from jordanlab.curves.polygon import polygon, polygons
from jordanlab.curves.random_walk import random_walk
from jordanlab.curves.raster import RasterError, digitize, rasterize, rasterize_paths
from jordanlab.curves.sample import sample_boundary
from jordanlab.curves.spiral import spiral
from jordanlab.curves._common import inner_radius

FAMILIES = {
    "blob": blob,
    "polygon": polygon,
    "spiral": spiral,
    "random_walk": random_walk,
    "shape": simple_shape,
}

__all__ = [
    "FAMILIES",
    "RasterError",
    "affine",
    "apply_affine",
    "blob",
    "blobs",
    "digitize",
    "inner_radius",
    "multi",
    "nested",
    "polygon",
    "polygons",
    "random_affine_matrix",
    "random_walk",
    "rasterize",
    "rasterize_paths",
    "sample_boundary",
    "simple_shape",
    "simple_shapes",
    "spiral",
    "texture",
]
