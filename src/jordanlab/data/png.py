"""PNG input/output for the CLI: a user's boundary image in, a filled mask out."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from jordanlab._atomic import atomic_path

__all__ = ["read_boundary_png", "read_boundary_image", "ImageTooLargeError", "write_mask_png", "fill_png",
           "CURVE_CONVENTIONS"]

CURVE_CONVENTIONS = ("auto", "dark", "light")
_THRESHOLD = 128
MAX_PIXELS = 8192 * 8192  # a larger drawing is refused before it is decoded (and a decompression bomb with it)
_MAX_GREY_FRACTION = 0.05  # more mid-grey pixels than this: not a two-valued drawing
_AMBIGUOUS_BAND = (0.4, 0.6)  # dark fraction in this band: "auto" cannot tell curve from background


def read_boundary_png(path: str | os.PathLike, *, curve: str = "auto") -> np.ndarray:
    """Read a boundary image from an 8-bit PNG (grey, grey+alpha, RGB, RGBA or palette).

    Colour is converted to grey (ITU-R 601 luma; transparent pixels count as white) and thresholded
    at 128. ``curve="dark"``: curve pixels are dark (< 128) on a light background; ``"light"``: light
    on dark; ``"auto"``: the curve is the minority class, and the image is rejected as ambiguous when
    the dark fraction is between 40% and 60%.

    Returns
    -------
    ndarray of shape (H, W), uint8 in {0, 1}

    Raises
    ------
    ValueError
        Naming the file: unreadable or not a PNG, not 8-bit, not two-valued (more than 5% of pixels
        strictly between 64 and 192), ambiguous under ``"auto"``, or without any curve pixel.
    """
    from PIL import Image, UnidentifiedImageError

    if curve not in CURVE_CONVENTIONS:
        raise ValueError(f"curve must be one of {CURVE_CONVENTIONS}, got {curve!r}")
    p = Path(path)
    try:
        with warnings.catch_warnings():  # the size check below refuses what PIL only warns about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise ValueError(f"{p}: {im.size[0]}x{im.size[1]} pixels is more than jordanlab reads "
                                 f"({MAX_PIXELS:,} pixels, e.g. 8192x8192)")
            im.load()
            fmt, mode = im.format, im.mode
            if fmt != "PNG":
                raise ValueError(f"{p}: not a PNG file (format {fmt})")
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise ValueError(f"{p}: {mode} PNGs (16-bit or float) are not supported; save an 8-bit PNG")
            if mode == "P":
                im = im.convert("RGBA")
                mode = "RGBA"
            if mode in ("RGBA", "LA", "PA"):
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))
            grey = np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{p}: cannot read as an image ({exc})") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{p}: the image is too large to read safely (a decompression bomb?)") from None
    if grey.ndim != 2 or min(grey.shape) < 3:
        raise ValueError(f"{p}: image must be at least 3x3 pixels, got shape {grey.shape}")
    mid = float(((grey > 64) & (grey < 192)).mean())
    if mid > _MAX_GREY_FRACTION:
        raise ValueError(
            f"{p}: not a two-valued image ({mid:.0%} of pixels are mid-grey); draw curves in black on "
            "white (or white on black) without anti-aliasing"
        )
    dark = grey < _THRESHOLD
    frac = float(dark.mean())
    if curve == "auto":
        if _AMBIGUOUS_BAND[0] <= frac <= _AMBIGUOUS_BAND[1]:
            raise ValueError(
                f"{p}: ambiguous image ({frac:.0%} dark pixels): cannot tell curve from background; "
                "pass curve='dark' (dark curves on light) or curve='light' (light curves on dark)"
            )
        curve = "dark" if frac < 0.5 else "light"
    b = dark if curve == "dark" else ~dark
    if not b.any():
        raise ValueError(f"{p}: no curve pixels under the {curve!r} convention")
    return b.astype(np.uint8)


class ImageTooLargeError(ValueError):
    """An image is larger than the caller accepts (checked from its header, before decoding)."""


def read_boundary_image(
    source: str | os.PathLike | bytes, *, curve: str = "auto", max_side: int | None = None, name: str | None = None
) -> np.ndarray:
    """Read a boundary from any image Pillow reads (PNG, JPEG, GIF, BMP, WebP, ...), path or bytes.

    Unlike :func:`read_boundary_png` this accepts lossy and anti-aliased images: grey (ITU-R 601 luma,
    transparent = white) is thresholded at 128 with no two-valuedness check, so a JPEG's ringing and a
    smooth pen's grey edge go to the nearer side. The curve is chosen as in :func:`read_boundary_png`.
    The result may need :func:`jordanlab.topology.repair.repair` before it is a valid boundary.

    Parameters
    ----------
    source : path-like or bytes
    curve : {"auto", "dark", "light"}
    max_side : int, optional
        Refuse (:class:`ImageTooLargeError`) an image wider or taller than this, before decoding it.
    name : str, optional
        How to name the image in messages (default: the path, or ``"image"``).

    Returns
    -------
    ndarray of shape (H, W), uint8 in {0, 1}
    """
    from PIL import Image, UnidentifiedImageError

    if curve not in CURVE_CONVENTIONS:
        raise ValueError(f"curve must be one of {CURVE_CONVENTIONS}, got {curve!r}")
    label = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "image")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else Path(source)
    try:
        with Image.open(stream) as im:
            w, h = im.size
            if max_side is not None and max(w, h) > max_side:
                raise ImageTooLargeError(f"{label}: image is {w}x{h}; at most {max_side}x{max_side} is accepted")
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                im = im.point(lambda v: v / 256).convert("L") if im.mode != "F" else im.convert("L")
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            grey = np.asarray(Image.alpha_composite(bg, im).convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label}: no such file") from None
    except ImageTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{label}: cannot read as an image ({exc})") from None
    if min(grey.shape) < 3:
        raise ValueError(f"{label}: image must be at least 3x3 pixels, got {grey.shape[1]}x{grey.shape[0]}")
    dark = grey < _THRESHOLD
    frac = float(dark.mean())
    if curve == "auto":
        if _AMBIGUOUS_BAND[0] <= frac <= _AMBIGUOUS_BAND[1]:
            raise ValueError(f"{label}: ambiguous image ({frac:.0%} dark pixels): cannot tell curve from background; "
                             "say which with curve='dark' or curve='light'")
        curve = "dark" if frac < 0.5 else "light"
    b = dark if curve == "dark" else ~dark
    if not b.any():
        raise ValueError(f"{label}: no curve pixels under the {curve!r} convention")
    return b.astype(np.uint8)


def write_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a binary mask ``(H, W)`` as an 8-bit grey PNG (figure 255, background 0), atomically."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {m.shape}")
    if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"mask must be bool or integer, got {m.dtype}")
    if m.size and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"mask must be binary (values in {{0, 1}}), got range [{m.min()}, {m.max()}]")
    p = Path(path)
    with atomic_path(p) as tmp:
        Image.fromarray(m.astype(np.uint8) * 255).save(tmp, format="PNG")
    return p


def fill_png(
    in_png: str | os.PathLike, out_png: str | os.PathLike, *, curve: str = "auto", method: str = "parity",
    repair: bool = False, repaired_png: str | os.PathLike | None = None, steps: list[str] | None = None,
) -> np.ndarray:
    """Fill a user's boundary PNG: read (:func:`read_boundary_png`), check, fill, write the mask PNG.

    The boundary is checked with :func:`jordanlab.topology.validate` (closed, non-touching curves),
    whose :class:`~jordanlab.topology.InvalidBoundaryError` is re-raised with the file name; the mask
    (figure 255, background 0) is :func:`jordanlab.topology.fill` with ``method``.

    With ``repair=True`` the image may be in any format Pillow reads (:func:`read_boundary_image`) and is
    first repaired by :func:`jordanlab.topology.repair.repair` (pinholes filled, small gaps joined,
    strokes thinned); its sentences are appended to ``steps`` and the repaired boundary written to
    ``repaired_png`` (curve 255) if given.

    Returns
    -------
    ndarray of shape (H, W), uint8: the mask written.
    """
    from jordanlab.topology import InvalidBoundaryError, fill, validate

    if repair:
        from jordanlab.topology.repair import repair as _repair

        fixed = _repair(read_boundary_image(in_png, curve=curve))
        if steps is not None:
            steps.extend(fixed.steps)
        boundary = fixed.boundary
        if repaired_png is not None:
            write_mask_png(boundary, repaired_png)
    else:
        boundary = read_boundary_png(in_png, curve=curve)
    try:
        validate(boundary)
    except InvalidBoundaryError as exc:
        raise InvalidBoundaryError(f"{in_png}: {exc}") from None
    mask = np.asarray(fill(boundary, method=method), dtype=np.uint8)
    write_mask_png(mask, out_png)
    return mask
