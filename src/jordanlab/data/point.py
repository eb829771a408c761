"""The scalar variant of the task (Minsky-Papert's predicate): is the marked pixel inside?"""

from __future__ import annotations

import numpy as np

from jordanlab._seeds import numpy_rng
from jordanlab.data.generate import make
from jordanlab.data.specs import resolve, salt

__all__ = ["make_point_task"]


def make_point_task(
    name: str, split: str = "test", n: int | None = None, seed: int = 0, *, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Curve images with one marked background pixel, labelled by whether it is inside the figure.

    Image ``i`` is image ``i`` of :func:`make` ``(name, split, n, seed)``; the marked pixel is drawn
    from ``default_rng([seed, salt, i, 1])`` uniformly among the non-curve pixels inside the figure
    when ``i`` is even and outside it when ``i`` is odd (falling back to the other side if one is
    empty), so the labels are balanced up to such fallbacks.

    Returns
    -------
    x : ndarray of shape (N, 2, H, W), float32
        Channel 0 the boundary image, channel 1 the one-hot marked pixel.
    y : ndarray of shape (N,), uint8
        ``mask[marked pixel]``: 1 inside (odd number of curves around it), 0 outside.
    """
    spec = resolve(name, size=size)
    b, m = make(name, split, n, seed, size=size)
    s = salt(spec.name, split, spec.size)
    x = np.zeros((len(b), 2) + b.shape[1:], dtype=np.float32)
    y = np.zeros(len(b), dtype=np.uint8)
    for i in range(len(b)):
        rng = numpy_rng(seed, s, i, 1)
        want_inside = i % 2 == 0
        inside = np.flatnonzero((m[i] == 1) & (b[i] == 0))
        outside = np.flatnonzero(m[i] == 0)
        pool = inside if (want_inside and inside.size) or not outside.size else outside
        k = int(pool[rng.integers(len(pool))])
        r, c = divmod(k, b.shape[2])
        x[i, 0] = b[i]
        x[i, 1, r, c] = 1.0
        y[i] = m[i, r, c]
    return x, y
