"""Kernel regression and the closed-form gradient-flow dynamics of MSE training.

With a fixed kernel ``K`` (the infinite-width NTK, or a trained network's tangent or path
kernel), gradient flow on ``L = ½ Σ_i (f(x_i) − y_i)²`` with learning rate ``η`` is linear:
``df(X)/dt = −η K(X, X) (f(X) − y)``, ``df(x)/dt = −η K(x, X) (f(X) − y)``. Its solution is

    f_t(X) = y + e^{−η K t} (f_0(X) − y)
    f_t(x) = f_0(x) + K(x, X) K^{−1} (I − e^{−η K t}) (y − f_0(X))

and ``t → ∞`` gives kernel regression, ``f*(x) = K(x, X) K^{−1} y`` (Arora et al. 2019, eq. 5)
when ``f_0 = 0``. A ``ridge`` λ replaces ``K(X, X)`` by ``K(X, X) + λ I`` throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["kernel_regression", "kernel_regression_min_ridge", "gradient_descent_mse", "discrete_gradient_descent_mse"]

ArrayLike = np.ndarray | torch.Tensor


def _tensor(x: object, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    t = t.to(dtype=torch.float64, device=device if device is not None else t.device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _scalar(v: object, name: str) -> float:
    """A real scalar (Python, NumPy or 0-d tensor) as a float."""
    if isinstance(v, bool) or (isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim != 0):
        raise TypeError(f"{name} must be a real scalar, got {v!r}")
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real scalar, got {type(v).__name__}") from None


def _check_train(k_train_train: ArrayLike, y_train: ArrayLike, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    k = _tensor(k_train_train, "k_train_train")
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"k_train_train must be a non-empty square (N, N) matrix, got shape {tuple(k.shape)}")
    y = _tensor(y_train, "y_train", k.device)
    if y.ndim not in (1, 2) or y.shape[0] != k.shape[0]:
        raise ValueError(
            f"y_train must have shape (N,) or (N, K) with N = {k.shape[0]} (from k_train_train), "
            f"got {tuple(y.shape)}"
        )
    ridge = _scalar(ridge, "ridge")
    if not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    scale = k.abs().max()
    if (k - k.T).abs().max() > 1e-10 * max(float(scale), 1e-300):
        raise ValueError("k_train_train must be symmetric, got an asymmetric matrix")
    return k, y


def _eigh(k: torch.Tensor, ridge: float, *, need_inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of ``K + ridge·I`` with a singularity / PSD check."""
    n = k.shape[0]
    a = (k + k.T) / 2 + ridge * torch.eye(n, dtype=k.dtype, device=k.device)
    evals, evecs = torch.linalg.eigh(a)
    top = float(evals.abs().max())
    tol = n * np.finfo(np.float64).eps * max(top, 1e-300)
    lo = float(evals.min())
    if lo < -tol * 1e3:
        raise ValueError(
            f"k_train_train + ridge·I is not positive semidefinite: smallest eigenvalue {lo:.3e}, "
            f"largest {top:.3e}; pass a valid kernel matrix or a larger ridge (now {ridge})"
        )
    if need_inverse and lo <= tol:
        raise ValueError(
            f"k_train_train + ridge·I is singular (condition number > {top / max(lo, 1e-300):.3e}, "
            f"smallest eigenvalue {lo:.3e}, largest {top:.3e}); pass ridge > 0 (now {ridge}), "
            "e.g. ridge=1e-6 * trace/N"
        )
    return evals.clamp_min(0.0), evecs


def _check_test(k_test_train: ArrayLike, n: int, device: torch.device) -> torch.Tensor:
    kt = _tensor(k_test_train, "k_test_train", device)
    if kt.ndim != 2 or kt.shape[1] != n:
        raise ValueError(f"k_test_train must have shape (M, {n}), got {tuple(kt.shape)}")
    return kt


def kernel_regression(
    k_test_train: ArrayLike,
    k_train_train: ArrayLike,
    y_train: ArrayLike,
    *,
    ridge: float = 0.0,
) -> torch.Tensor:
    """Kernel regression predictor ``f*(x) = K(x, X) (K(X, X) + λ I)^{-1} y``.

    Parameters
    ----------
    k_test_train : ndarray or Tensor of shape (M, N)
    k_train_train : ndarray or Tensor of shape (N, N)
        Symmetric positive (semi)definite.
    y_train : ndarray or Tensor of shape (N,) or (N, K)
    ridge : float
        λ ≥ 0 added to the diagonal.

    Returns
    -------
    Tensor of shape (M,) or (M, K), float64

    Raises
    ------
    ValueError
        If ``K(X, X) + λ I`` is numerically singular (eigenvalue ≤ N·eps·max): pass ``ridge > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> kernel_regression(k, k, np.array([1.0, -1.0])).round(decimals=12).tolist()  # interpolates
    [1.0, -1.0]
    """
    k, y = _check_train(k_train_train, y_train, ridge)
    kt = _check_test(k_test_train, k.shape[0], k.device)
    evals, evecs = _eigh(k, float(ridge), need_inverse=True)
    alpha = evecs @ ((evecs.T @ y) / (evals if y.ndim == 1 else evals[:, None]))
    return kt @ alpha


def kernel_regression_min_ridge(
    k_test_train: ArrayLike,
    k_train_train: ArrayLike,
    y_train: ArrayLike,
    *,
    ridge: float = 1e-8,
    max_ridge: float = 1e-2,
    factor: float = 100.0,
) -> tuple[torch.Tensor, float]:
    """:func:`kernel_regression` with the smallest relative ridge in ``ridge · factor^j`` that is invertible.

    The ridge is relative to the kernel's scale: ``λ = r · mean_i K(x_i, x_i)`` with
    ``r = ridge, ridge·factor, …`` up to ``max_ridge``; ``K(X, X)`` is symmetrized first (``(K + Kᵀ)/2``),
    so a kernel that is symmetric only up to rounding is accepted. ``ridge=0`` is plain kernel regression
    (nothing to escalate).

    Returns
    -------
    f : Tensor of shape (M,) or (M, K), float64
    r : float
        The relative ridge used.

    Raises
    ------
    ValueError
        If ``K + λI`` is singular even at ``r = max_ridge``.

    Examples
    --------
    >>> import torch
    >>> k = torch.ones(2, 2, dtype=torch.float64)  # rank 1: needs a ridge
    >>> f, r = kernel_regression_min_ridge(k, k, torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> r, [round(v, 6) for v in f.tolist()]
    (1e-08, [1.0, 1.0])
    """
    k = _tensor(k_train_train, "k_train_train")
    k = (k + k.T) / 2
    scale = float(torch.diagonal(k).mean())
    r = _scalar(ridge, "ridge")
    if not (math.isfinite(r) and r >= 0) or not factor > 1:
        raise ValueError(f"ridge must be >= 0 and factor > 1, got ridge={ridge!r}, factor={factor!r}")
    while True:
        try:
            return kernel_regression(k_test_train, k, y_train, ridge=r * scale), r
        except ValueError:
            if r == 0 or r >= max_ridge:
                raise
            r *= factor


def discrete_gradient_descent_mse(
    k_train_train: ArrayLike,
    k_test_train: ArrayLike,
    y_train: ArrayLike,
    *,
    lr: float,
    steps: int,
) -> torch.Tensor:
    """``steps`` steps of discrete GD on ``½ Σ_i (f(x_i) − y_i)²`` for the linear model of a fixed kernel, from f₀ = 0.

    With ``K(X, X) = V diag(λ) Vᵀ`` the iterate is
    ``f_T(x) = K(x, X) V diag((1 − (1 − η λ_i)^T) / λ_i) Vᵀ y`` (the factor is ``η T`` where ``λ_i = 0``):
    the exact discrete counterpart of :func:`gradient_descent_mse`'s gradient flow.

    Returns
    -------
    Tensor of shape (M,) or (M, K), float64

    Examples
    --------
    >>> import torch
    >>> k = torch.tensor([[1.0]], dtype=torch.float64)
    >>> discrete_gradient_descent_mse(k, k, torch.tensor([2.0]), lr=0.5, steps=2).tolist()  # 2 · (1 − 0.5²)
    [1.5]
    """
    k, y = _check_train(k_train_train, y_train, 0.0)
    kt = _check_test(k_test_train, k.shape[0], k.device)
    lr = _scalar(lr, "lr")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    lam, v = torch.linalg.eigh((k + k.T) / 2)
    tol = lam.shape[0] * torch.finfo(lam.dtype).eps * float(lam.abs().max())
    gain = torch.where(lam > tol, (1 - (1 - lr * lam) ** steps) / torch.where(lam > tol, lam, 1.0), lr * steps)
    g = gain if y.ndim == 1 else gain[:, None]
    return kt @ (v @ (g * (v.T @ y)))


def gradient_descent_mse(
    k_train_train: ArrayLike,
    y_train: ArrayLike,
    *,
    lr: float = 1.0,
    ridge: float = 0.0,
) -> Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """Closed-form gradient flow on ``½ Σ (f(x_i) − y_i)²`` with a fixed kernel.

    Parameters
    ----------
    k_train_train : ndarray or Tensor of shape (N, N)
    y_train : ndarray or Tensor of shape (N,) or (N, K)
    lr : float
        Learning rate η > 0 (time is measured as ``t``; ``t = steps`` for GD with step η).
    ridge : float
        λ ≥ 0: ``K + λ I`` replaces ``K(X, X)``.

    Returns
    -------
    predict(t, fx_train_0=0.0, fx_test_0=0.0, k_test_train=None)
        ``t`` a float (``math.inf`` allowed) or a 1-D sequence of T times (a leading axis
        of length T is then added). Returns ``fx_train_t`` of shape (N,) or (N, K), or
        ``(fx_train_t, fx_test_t)`` when ``k_test_train`` of shape (M, N) is given.

    Notes
    -----
    With ``K + λI = V diag(λ_i) Vᵀ``: ``f_t(X) = y + V e^{−η λ t} Vᵀ (f_0(X) − y)`` and
    ``f_t(x) = f_0(x) + K(x, X) V diag((1 − e^{−η λ_i t}) / λ_i) Vᵀ (y − f_0(X))``, where the
    factor tends to ``η t`` as ``λ_i → 0`` (finite ``t`` needs no inverse) and to ``1/λ_i`` as
    ``t → ∞`` (which raises ``ValueError`` if the matrix is singular).
    """
    k, y = _check_train(k_train_train, y_train, ridge)
    ridge, lr = float(ridge), _scalar(lr, "lr")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    evals, evecs = _eigh(k, ridge, need_inverse=False)
    n = k.shape[0]
    tol = n * np.finfo(np.float64).eps * max(float(evals.max()), 1e-300)
    singular = bool((evals <= tol).any())
    eta = float(lr)

    def _broadcast(v: object, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if isinstance(v, (int, float)):
            return torch.full(shape, float(v), dtype=torch.float64, device=k.device)
        t = _tensor(v, name, k.device)
        try:
            return torch.broadcast_to(t, shape).clone()
        except RuntimeError as exc:
            raise ValueError(f"{name} must broadcast to shape {shape}, got {tuple(t.shape)}") from exc

    def predict(
        t: float | Sequence[float] | np.ndarray,
        fx_train_0: object = 0.0,
        fx_test_0: object = 0.0,
        k_test_train: ArrayLike | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        times = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if times.ndim != 1 or np.isnan(times).any() or (times < 0).any():
            raise ValueError(f"t must be a time >= 0 (math.inf allowed) or a 1-D sequence of them, got {t!r}")
        if np.isinf(times).any() and singular:
            raise ValueError(
                "k_train_train + ridge·I is singular, so t = inf (kernel regression) is undefined; "
                f"pass ridge > 0 (now {ridge}) or a finite t"
            )
        f0 = _broadcast(fx_train_0, "fx_train_0", tuple(y.shape))
        kt = None if k_test_train is None else _check_test(k_test_train, n, k.device)
        if kt is not None:
            g0 = _broadcast(fx_test_0, "fx_test_0", (kt.shape[0], *y.shape[1:]))
        r = evecs.T @ (y - f0)  # residual in the eigenbasis, (N,) or (N, K)
        trains, tests = [], []
        for ti in times:
            if math.isinf(ti):
                decay = torch.zeros_like(evals)
                gain = 1.0 / evals
            else:
                x = eta * ti * evals
                decay = torch.exp(-x)
                # (1 - e^{-η λ t}) / λ, with its limit η t at λ = 0
                gain = torch.where(
                    evals > tol, -torch.expm1(-x) / torch.where(evals > tol, evals, 1.0), eta * ti
                )
            d = decay if y.ndim == 1 else decay[:, None]
            g = gain if y.ndim == 1 else gain[:, None]
            trains.append(y - evecs @ (d * r))
            if kt is not None:
                tests.append(g0 + kt @ (evecs @ (g * r)))
        fx_train = trains[0] if np.ndim(t) == 0 else torch.stack(trains)
        if kt is None:
            return fx_train
        fx_test = tests[0] if np.ndim(t) == 0 else torch.stack(tests)
        return fx_train, fx_test

    return predict
