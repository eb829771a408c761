"""Weight-tied recurrent convolutional network with recall (DeepThinking style).

The network applies one local block again and again; every application moves information a
few pixels, so filling a region needs a number of iterations proportional to its geodesic
depth. Training can use the progressive loss of Bansal et al. (2022) through the
:meth:`RecurrentNet.init_state` / :meth:`RecurrentNet.step` / :meth:`RecurrentNet.readout`
interface; test time can run as long as the image needs with :func:`run_until_stable`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .parts import BasicBlock, ChannelNorm, check_images, check_positive_int

STATE_NORMS = ("channel", "none")


def _check_iters(iters: object, name: str = "iters") -> int:
    if isinstance(iters, bool) or not isinstance(iters, int):
        raise TypeError(f"{name} must be an int, got {type(iters).__name__} {iters!r}")
    if iters < 0:
        raise ValueError(f"{name} must be >= 0, got {iters}")
    return iters


class RecurrentNet(nn.Module):
    """Recurrent CNN with recall: s₀ = P(x), s_{t+1} = R([s_t, x]), logits = H(s_T).

    - P (projection): 3×3 conv ``C → width`` → ReLU.
    - R (recurrent block, shared over iterations): 3×3 conv ``width + C → width`` → ReLU on the
      state concatenated with the input (*recall*), then ``blocks`` residual BasicBlocks
      (two 3×3 convs each), then the state normalisation.
    - H (head): 3×3 conv ``width → 16`` → ReLU → 3×3 conv ``16 → 8`` → ReLU → 1×1 conv ``8 → 1``.

    One iteration is ``1 + 2·blocks`` 3×3 convs, so information travels at most that many
    pixels per iteration; the receptive field grows without bound with the number of
    iterations. All convs use zero padding (zero is the background of a boundary image) and
    no BatchNorm, so the network is the same function on every canvas size. P and R have a
    bias (unlike DeepThinking): a constant channel lets R see the canvas border through the
    zero padding, which is where the outside region starts; the residual blocks have none.

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input.
    width : int
        Channels of the state.
    blocks : int
        Residual blocks per iteration.
    iters : int
        Default number of iterations of :meth:`forward` (the training depth).
    state_norm : {"channel", "none"}
        ``"channel"`` applies a per-pixel LayerNorm over the channels (no affine) after each
        iteration: local, size-independent, and it keeps the state bounded over long
        rollouts; ``"none"`` is DeepThinking's choice.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 32,
        blocks: int = 1,
        iters: int = 20,
        state_norm: str = "channel",
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        check_positive_int(width, "width")
        check_positive_int(blocks, "blocks")
        self.default_iters = _check_iters(iters)
        if state_norm not in STATE_NORMS:
            raise ValueError(f"state_norm={state_norm!r} is not supported; expected one of {STATE_NORMS}")
        self.project = nn.Conv2d(in_channels, width, 3, padding=1)
        self.recall = nn.Conv2d(width + in_channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(BasicBlock(width) for _ in range(blocks)))
        self.state_norm = ChannelNorm() if state_norm == "channel" else nn.Identity()
        self.head = nn.Sequential(
            nn.Conv2d(width, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 1, 1),
        )

    @property
    def convs_per_iteration(self) -> int:
        """Number of 3×3 convs in one application of the recurrent block."""
        return 1 + 2 * len(self.blocks)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        """s₀ = norm(ReLU(P(x))), shape ``(N, width, H, W)``."""
        check_images(x, self.in_channels)
        return self.state_norm(F.relu(self.project(x)))

    def step(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One iteration s ↦ norm(blocks(ReLU(conv([s, x])))) (same shape as ``state``)."""
        return self.state_norm(self.blocks(F.relu(self.recall(torch.cat([state, x], dim=1)))))

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` of a state."""
        return self.head(state)

    def forward(self, x: torch.Tensor, iters: int | None = None) -> torch.Tensor:
        """Logits after ``iters`` iterations (``None``: ``self.default_iters``)."""
        n = self.default_iters if iters is None else _check_iters(iters)
        state = self.init_state(x)
        for _ in range(n):
            state = self.step(x, state)
        return self.readout(state)


def progressive_rollout(model: RecurrentNet, x: torch.Tensor, *, n: int, k: int) -> torch.Tensor:
    """Logits after n + k iterations, differentiable only through the last k (Bansal et al. 2022).

    The first n iterations (and the projection) run without gradient and the state is
    detached, so the loss of these logits teaches the recurrent block to improve *any* state it
    is handed, not a behaviour tied to an iteration count. The progressive loss is
    ``L = (1 − α) · BCE(model(x, iters=T)) + α · BCE(progressive_rollout(model, x, n=n, k=k))``
    with n ~ U{0, …, T − 1}, k ~ U{1, …, T − n} drawn by the training loop.

    Returns
    -------
    Tensor of shape (N, 1, H, W)
        Equal in value to ``model(x, iters=n + k)``.
    """
    if not isinstance(model, RecurrentNet):
        raise TypeError(f"model must be a RecurrentNet, got {type(model).__name__}")
    n, k = _check_iters(n, "n"), _check_iters(k, "k")
    with torch.no_grad():
        state = model.init_state(x)
        for _ in range(n):
            state = model.step(x, state)
    state = state.detach()
    for _ in range(k):
        state = model.step(x, state)
    return model.readout(state)


@torch.no_grad()
def run_until_stable(
    model: RecurrentNet,
    x: torch.Tensor,
    *,
    max_iters: int,
    patience: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterate each image until its predicted mask stops changing; no labels are used.

    After every iteration t the prediction is ``logits > 0``. Image i halts at the first t
    such that its prediction at t equals its predictions at t−1, …, t−``patience`` (it has not
    changed for ``patience`` iterations); its logits at t are returned and t is its iteration
    count. Images that never halt get the logits after ``max_iters`` iterations. Halted images
    are dropped from the batch, so the cost follows the hardest image.

    Parameters
    ----------
    model : RecurrentNet
        The network (its train/eval mode is left as it is).
    x : Tensor of shape (N, C, H, W)
        Input images.
    max_iters : int
        Iteration budget.
    patience : int
        Number of unchanged iterations that counts as converged.

    Returns
    -------
    logits : Tensor of shape (N, 1, H, W)
    iters_used : LongTensor of shape (N,)
        Iterations applied to each image (``max_iters`` for those that did not converge).
    """
    if not isinstance(model, RecurrentNet):
        raise TypeError(f"model must be a RecurrentNet, got {type(model).__name__}")
    _check_iters(max_iters, "max_iters")
    check_positive_int(patience, "patience")
    state = model.init_state(x)
    logits = model.readout(state)
    out = logits.clone()
    iters_used = torch.full((x.shape[0],), max_iters, dtype=torch.long, device=x.device)
    active = torch.arange(x.shape[0], device=x.device)
    xa = x
    pred = logits > 0
    unchanged = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for t in range(1, max_iters + 1):
        state = model.step(xa, state)
        logits = model.readout(state)
        new_pred = logits > 0
        same = (new_pred == pred).flatten(1).all(dim=1)
        unchanged = torch.where(same, unchanged + 1, torch.zeros_like(unchanged))
        pred = new_pred
        out[active] = logits
        done = unchanged >= patience
        if done.any():
            iters_used[active[done]] = t
            keep = ~done
            active, xa, state = active[keep], xa[keep], state[keep]
            pred, unchanged = pred[keep], unchanged[keep]
            if active.numel() == 0:
                break
    return out, iters_used
