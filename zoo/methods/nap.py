"""NAP: end-to-end meta-Bayesian optimisation with a transformer neural process (Maraval et al., NeurIPS 2023).

One transformer is both the surrogate and the acquisition function of a BO loop over a finite candidate pool:

* history tokens ``e_l = W_x x_l + W_y y_l`` and candidate tokens ``e_j = W_x x_j`` (no positional encoding);
* the attention mask lets every token see the real history tokens and itself only, so candidates are predicted
  independently given the history (TNP-D / PFN style) and the history does not depend on the candidates;
* a bar-distribution ("Riemann") head over ``y`` with 1,000 equal buckets on ``(-0.1, 1.1)``, trained by negative
  log-likelihood on an i.i.d. random context (the paper's auxiliary task);
* an acquisition MLP on ``[softmax(bucket logits), candidate embedding, incumbent, t/T]`` whose output divided by a
  temperature are the policy logits, and a value head on ``[incumbent, t/T]``;
* PPO (clipped ratio, GAE(gamma, lambda)) on the reward ``-log10(simple regret)``.

Our configs train in two stages (``NAPModule(stage=...)``, ``init_from``): the likelihood head alone on many tasks,
then PPO from it, with the policy starting as log EI of that head (``NAPNetwork(af_prior="log_ei")``) and a raised,
normalised regret floor; the official single-stage recipe stays the default. :mod:`zoo.methods.nap_diagnostics` measures
whether a trained network uses its history.

Every detail and default follows the official code (``huawei-noah/HEBO``, folder ``NAP/``: ``transformer.py``,
``nap.py``, ``bar_distribution.py``, ``ppo_nap.py``, ``ppo_batchrecorder_nap.py``, ``function_gym_nap.py`` and
``scripts/nap/train_nap_hpo.py``); where this port departs from it the docstring of the piece says so and why.
The rollouts are vectorised over the tasks of a batch in torch (no gym, no worker processes).

The pure functions at the top (bar distribution, reward, attention mask) are what the tests check against values
computed by hand; GAE, the PPO losses and advantage normalisation come from :mod:`zoo.training.rl`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from zoo.training.base import ZooModule
from zoo.training.rl import categorical_entropy, gae, normalise_advantages, ppo_clip_loss, ppo_value_loss

REWARD_FLOOR = 1e-20  # the official clip: regret below this counts as found, reward -log10(1e-20) = 20


# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------
def bucket_borders(n_buckets: int, low: float, high: float) -> torch.Tensor:
    """``n_buckets + 1`` equal-width borders on ``[low, high]`` (``get_bucket_limits(full_range=...)`` upstream)."""
    if n_buckets < 2:
        raise ValueError(f"n_buckets must be >= 2, got {n_buckets}")
    if not high > low:
        raise ValueError(f"y range must have high > low, got ({low}, {high})")
    return torch.linspace(low, high, n_buckets + 1, dtype=torch.float64).float()


def bar_log_density(logits: torch.Tensor, y: torch.Tensor, borders: torch.Tensor) -> torch.Tensor:
    """Log-density of ``y`` under the bar (Riemann) distribution with bucket ``logits`` (PFN, Mueller et al. 2022).

    The density is piecewise constant: ``p(y) = softmax(logits)_k / width_k`` for ``y`` in bucket ``k``. This is
    ``BarDistribution.forward`` of the official code. ``y`` outside ``[borders[0], borders[-1]]`` has no support and
    is an error, as upstream (targets are min-max normalised to ``[0, 1]`` inside the ``(-0.1, 1.1)`` range).

    Args:
        logits: ``[..., K]`` unnormalised bucket scores.
        y: ``[...]`` targets.
        borders: ``[K + 1]`` sorted bucket borders.
    """
    k = borders.numel() - 1
    if logits.shape[-1] != k:
        raise ValueError(f"logits have {logits.shape[-1]} buckets, borders define {k}")
    if (y < borders[0]).any() or (y > borders[-1]).any():
        raise ValueError(f"y outside the bar distribution's support [{float(borders[0])}, {float(borders[-1])}]: "
                         f"min {float(y.min())}, max {float(y.max())}")
    idx = (torch.searchsorted(borders.contiguous(), y.contiguous().to(borders.dtype), right=True) - 1).clamp(0, k - 1)
    widths = borders[1:] - borders[:-1]
    log_p = torch.log_softmax(logits, -1) - torch.log(widths)
    return log_p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


def bar_nll(logits: torch.Tensor, y: torch.Tensor, borders: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-likelihood ``-mean log p(y)`` over the entries where ``mask`` is true (all by default).

    This is the auxiliary loss ``L_NLL`` of the paper (``loss_ce`` in ``ppo_nap.py``).
    """
    nll = -bar_log_density(logits, y, borders)
    if mask is None:
        return nll.mean()
    return (nll * mask).sum() / mask.sum().clamp_min(1)


def bar_mean(logits: torch.Tensor, borders: torch.Tensor) -> torch.Tensor:
    """Mean of the bar distribution: ``sum_k p_k * (bucket k's midpoint)``."""
    mids = (borders[1:] + borders[:-1]) / 2
    return torch.softmax(logits, -1) @ mids


def bar_std(logits: torch.Tensor, borders: torch.Tensor) -> torch.Tensor:
    """Standard deviation, with each bucket's mass at its midpoint (as upstream ``BarDistribution.variance``)."""
    p = torch.softmax(logits, -1)
    mids = (borders[1:] + borders[:-1]) / 2
    mean = p @ mids
    return (p * (mids - mean.unsqueeze(-1)) ** 2).sum(-1).clamp_min(0).sqrt()


def bar_ei(logits: torch.Tensor, borders: torch.Tensor, best_f: torch.Tensor) -> torch.Tensor:
    """Expected improvement ``E[max(y - best_f, 0)]`` under the bar distribution, integrated exactly.

    For bucket ``[a, b]`` holding mass ``p`` spread uniformly: the contribution is ``p((a + b)/2 - f)`` when
    ``f <= a``, ``p(b - f)^2 / (2(b - a))`` when ``a < f < b`` and 0 when ``f >= b``.
    [INTERP] The official ``ei_batch`` uses ``max((b + max(a, f))/2 - f, 0)`` for every bucket, which drops the
    ``(b - f)/(b - a)`` mass fraction of the straddling bucket; with 1,000 buckets the two differ by at most half a
    bucket width times one bucket's mass, and the exact integral is what "EI computed from its buckets" means.

    Args:
        logits: ``[..., K]``.
        borders: ``[K + 1]``.
        best_f: incumbent, broadcastable to ``logits.shape[:-1]``.
    """
    return bar_ei_from_probs(torch.softmax(logits, -1), borders, best_f)


def bar_ei_from_probs(probs: torch.Tensor, borders: torch.Tensor, best_f: torch.Tensor) -> torch.Tensor:
    """:func:`bar_ei` from bucket probabilities already computed (the policy's forward pass needs them for its
    MLP too, and a second softmax over ``N x K`` was a sixth of a decision's time). The per-bucket improvement
    depends on the incumbent only, so it is computed once per task (``[..., 1, K]``) and the EI of every candidate
    is one weighted sum over buckets."""
    a, b = borders[:-1], borders[1:]
    f = torch.as_tensor(best_f, dtype=probs.dtype, device=probs.device).unsqueeze(-1)
    full = (a + b) / 2 - f
    partial = (b - f).clamp_min(0) ** 2 / (2 * (b - a))
    contrib = torch.where(f <= a, full, partial)
    return (probs * contrib).sum(-1)


def neg_log10_regret(y_star: torch.Tensor, incumbent: torch.Tensor, floor: float = REWARD_FLOOR,
                     normalise: bool = False) -> torch.Tensor:
    """NAP's reward ``-log10(max(floor, y* - max_l y_l))`` (``reward_transformation="neg_log10"``, official floor
    1e-20), divided by ``-log10(floor)`` when ``normalise`` so that it lies in ``[0, 1]``.

    With the official floor a step taken after the optimum is found is worth 20 while a typical step before it is
    worth about 1, so returns (and the value loss, ~1e4) mostly measure how early a task's optimum happens to be
    hit; a raised floor (1e-3: a thousandth of the task's range, below what a 1,000-point pool resolves) and the
    normalisation keep the returns on the scale of the regret the benchmark reports.
    """
    if not 0 < floor < 1:
        raise ValueError(f"regret floor must be in (0, 1), got {floor}")
    r = -torch.log10((y_star - incumbent).clamp_min(floor))
    return r / -math.log10(floor) if normalise else r


def dq_mask(size: int, n_ctx: int) -> torch.Tensor:
    """The official additive mask ``generate_D_q_matrix``: ``M[i, j] = 0`` if ``j < n_ctx`` or ``i == j``, else -inf.

    The model below never builds this ``L x L`` matrix (it attends to the history and to the token itself
    directly, in ``O(L * n_ctx)``); the mask is kept to state the contract and to test the model against
    ``nn.TransformerEncoder`` with it.
    """
    allowed = torch.zeros(size, size, dtype=torch.bool)
    allowed[:, :n_ctx] = True
    allowed |= torch.eye(size, dtype=torch.bool)
    return torch.zeros(size, size).masked_fill(~allowed, float("-inf"))


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """True where a logit is below the k-th largest of its row (``top_k_top_p_filtering`` of the official code)."""
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits < kth


def key_generator(*key: Any) -> torch.Generator:
    """A generator seeded by a hash of ``key``: rollouts and minibatch orders are pure functions of their key."""
    text = "/".join(str(k) for k in key).encode()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little"))


# ----------------------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------------------
class HistoryAttention(nn.Module):
    """Multi-head attention in which every token attends to the valid history tokens and to itself.

    Equivalent to ``nn.MultiheadAttention`` under :func:`dq_mask` (same parameter names and shapes, so weights load
    either way), but it computes the ``L x n_ctx`` scores instead of ``L x L``: candidates never attend to each
    other, so with hundreds of candidates and tens of history points this is what makes CPU training practical.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        # nn.MultiheadAttention's own initialisation, which the official model keeps for its attention.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)
        self.out_proj._nap_keep_init = True

    def forward(self, z: torch.Tensor, n_hist: int, hist_valid: torch.Tensor) -> torch.Tensor:
        """``z``: ``[B, L, d]`` with the ``n_hist`` history tokens first; ``hist_valid``: ``[B, n_hist]`` bool."""
        bsz, length, d = z.shape
        h = self.n_heads
        q, k, v = F.linear(z, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.view(bsz, length, h, d // h).transpose(1, 2) for t in (q, k, v))  # [B, h, L, dh]
        scale = 1.0 / math.sqrt(d // h)
        s_self = (q * k).sum(-1, keepdim=True) * scale  # [B, h, L, 1]
        if n_hist > 0:
            s_hist = q @ k[:, :, :n_hist].transpose(-1, -2) * scale  # [B, h, L, H]
            allowed = hist_valid[:, None, None, :].expand(bsz, 1, length, n_hist).clone()
            # a history token already sees itself among the history keys: drop that copy, keep the self term
            diag = torch.arange(n_hist, device=z.device)
            allowed[:, :, diag, diag] = False
            s_hist = s_hist.masked_fill(~allowed, float("-inf"))
            attn = torch.softmax(torch.cat([s_hist, s_self], -1), -1)
            if self.training and self.dropout > 0:
                attn = F.dropout(attn, self.dropout)
            out = attn[..., :n_hist] @ v[:, :, :n_hist] + attn[..., n_hist:] * v
        else:
            out = v  # only the token itself is visible: softmax over one score is 1
        return self.out_proj(out.transpose(1, 2).reshape(bsz, length, d))

    def forward_split(self, zh: torch.Tensor, zc: torch.Tensor, qkv_c: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` for an all-valid history ``zh`` ``[B, H, d]`` and candidates ``zc`` ``[B, N, d]`` held
        apart (inference). The history attends to itself alone (plain attention, itself once among the keys); a
        candidate attends to the history's keys and its own, with the softmax over the ``H + 1`` scores written
        out, so the ``N x H`` scores are neither masked nor concatenated. ``qkv_c`` are the candidates' projections
        when the caller has them (the first layer's depend on ``x`` only and are cached across the steps of a run).
        Equal to :meth:`forward` up to float rounding (tested)."""
        bsz, n_hist, d = zh.shape
        h, dh = self.n_heads, d // self.n_heads
        if qkv_c is None:
            qkv_c = F.linear(zc, self.in_proj_weight, self.in_proj_bias)
        qc, kc, vc = (t.view(bsz, -1, h, dh).transpose(1, 2) for t in qkv_c.chunk(3, dim=-1))  # [B, h, N, dh]
        scale = 1.0 / math.sqrt(dh)
        if n_hist == 0:
            return zh, self.out_proj(vc.transpose(1, 2).reshape(bsz, -1, d))
        qh, kh, vh = (t.view(bsz, n_hist, h, dh).transpose(1, 2)
                      for t in F.linear(zh, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        out_h = torch.softmax(qh @ kh.transpose(-1, -2) * scale, -1) @ vh
        s_hist = qc @ kh.transpose(-1, -2) * scale  # [B, h, N, H]
        s_self = (qc * kc).sum(-1, keepdim=True) * scale  # [B, h, N, 1]
        top = torch.maximum(s_hist.amax(-1, keepdim=True), s_self)
        e_hist, e_self = (s_hist - top).exp_(), (s_self - top).exp_()
        norm = e_hist.sum(-1, keepdim=True) + e_self
        out_c = (e_hist @ vh + e_self * vc) / norm
        return (self.out_proj(out_h.transpose(1, 2).reshape(bsz, n_hist, d)),
                self.out_proj(out_c.transpose(1, 2).reshape(bsz, -1, d)))


class NAPEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (post-LN, GELU, ``batch_first``) with :class:`HistoryAttention`.

    Parameter names match ``nn.TransformerEncoderLayer`` (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``), so a state dict moves between the two.
    """

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = HistoryAttention(d_model, n_heads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, n_hist: int, hist_valid: torch.Tensor) -> torch.Tensor:
        return self._feed_forward(z, self.self_attn(z, n_hist, hist_valid))

    def forward_split(self, zh: torch.Tensor, zc: torch.Tensor, qkv_c: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer on a history and candidates held apart (:meth:`HistoryAttention.forward_split`)."""
        ah, ac = self.self_attn.forward_split(zh, zc, qkv_c)
        return self._feed_forward(zh, ah), self._feed_forward(zc, ac)

    def _feed_forward(self, z: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        z = self.norm1(z + self.dropout(attn))
        return self.norm2(z + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(z))))))


class NAPNetwork(nn.Module):
    """The transformer neural process with its bucket, acquisition and value heads (``TransformerModel``).

    Injected into :class:`NAPModule` as ``network`` (``class_path: zoo.methods.nap.NAPNetwork``); ``init_args`` records the
    constructor arguments, so a checkpoint or registry entry names the architecture it holds.

    Args:
        input_dim: dimension ``D`` of the search space.
        d_model, n_layers, n_heads, dim_feedforward, dropout: the encoder (official: 512, 6, 4, 1024, 0.0).
        n_buckets, y_low, y_high: the bar distribution (official: 1000 buckets on (-0.1, 1.1)).
        af_name: ``"mlp"`` (NAP), ``"ei"`` or ``"ucb"`` (mean + 2 std) computed from the buckets.
        af_hidden: width of the 3 hidden layers of the acquisition MLP (official: 200).
        joint_model_af_training: let policy gradients flow into the transformer through the bucket probabilities
            and the candidate embedding (official default ``True``); ``False`` detaches them ("Disjoint").
        temperature: policy logits are ``af / temperature`` (official 0.1).
        af_prior: ``None`` (official: the acquisition is the MLP alone) or ``"log_ei"``: the MLP becomes a residual
            on ``log EI`` computed from the buckets, ``af = log(EI + 1e-12) + MLP(...)``, with the MLP's output
            layer initialised at zero. [INTERP] The official MLP starts from N(0, 0.01^2) weights, i.e. a flat
            policy that PPO must shape from sparse regret rewards alone (the review of our first port found the
            trained policy applying one fixed ranking of x whatever the history). Starting from ``log EI`` of a
            likelihood head pre-trained on many tasks, the initial policy is the EI policy of that head (greedy
            argmax equal to the "likelihood only (EI)" ablation) and PPO learns a correction to it. The log makes
            the logits' scale independent of the task's regret scale (EI spans orders of magnitude as a run
            progresses).
        init: ``"official"`` (``NAP.init_weights``: every ``nn.Linear`` N(0, 0.01^2) with zero bias) or
            ``"torch"`` (PyTorch's default initialisation of every layer). [INTERP] Under the official
            initialisation the GP-prior likelihood head collapsed to the marginal of ``y``: its held-out NLL was
            identical with 5 and 50 context points after 250, 500 and 750 steps (the bucket decoder's two
            0.01-scale layers pass ~1e-4 of a gradient back to the encoder), while with ``"torch"`` the NLL at 50
            points was below that at 5 after 250 steps (``benchmarks/nap_pretrain.py --network-init``); on
            Hartmann-3, where ``x`` alone predicts ``y``, the official one learns. The GP-prior configs use
            ``"torch"``; the README's NAP section has the curves.
    """

    def __init__(self, input_dim: int, d_model: int = 512, n_layers: int = 6, n_heads: int = 4,
                 dim_feedforward: int = 1024, dropout: float = 0.0, n_buckets: int = 1000, y_low: float = -0.1,
                 y_high: float = 1.1, af_name: str = "mlp", af_hidden: int = 200,
                 joint_model_af_training: bool = True, temperature: float = 0.1, af_prior: str | None = None,
                 init: str = "official"):
        super().__init__()
        # the architecture, stored beside the weights (zoo.methods.bo.save_nap, registry entries, ZooModule.save_config)
        self.init_args = dict(input_dim=input_dim, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                              dim_feedforward=dim_feedforward, dropout=dropout, n_buckets=n_buckets, y_low=y_low,
                              y_high=y_high, af_name=af_name, af_hidden=af_hidden,
                              joint_model_af_training=joint_model_af_training, temperature=temperature)
        if af_prior is not None:  # recorded only when set, so files written before the switch keep their args
            self.init_args["af_prior"] = af_prior
        if init != "official":  # likewise
            self.init_args["init"] = init
        if init not in ("official", "torch"):
            raise ValueError(f"init must be 'official' or 'torch', got {init!r}")
        if af_name not in ("mlp", "ei", "ucb"):
            raise ValueError(f"af_name must be 'mlp', 'ei' or 'ucb', got {af_name!r}")
        if af_prior not in (None, "log_ei"):
            raise ValueError(f"af_prior must be None or 'log_ei', got {af_prior!r}")
        self.af_prior = af_prior
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        self.input_dim, self.af_name, self.temperature = input_dim, af_name, temperature
        self.joint = joint_model_af_training
        self.register_buffer("borders", bucket_borders(n_buckets, y_low, y_high))
        self.x_encoder = nn.Linear(input_dim, d_model)
        self.y_encoder = nn.Linear(1, d_model)
        self.layers = nn.ModuleList(NAPEncoderLayer(d_model, n_heads, dim_feedforward, dropout)
                                    for _ in range(n_layers))
        self.bucket_decoder = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.GELU(),
                                            nn.Linear(dim_feedforward, n_buckets))
        self.af_decoder = nn.Sequential(nn.Linear(n_buckets + d_model + 2, af_hidden), nn.ReLU(),
                                        nn.Linear(af_hidden, af_hidden), nn.ReLU(),
                                        nn.Linear(af_hidden, af_hidden), nn.ReLU(),
                                        nn.Linear(af_hidden, 1))
        self.value_head = nn.Sequential(nn.Linear(2, d_model), nn.Tanh(), nn.Linear(d_model, 1))
        if init == "official":
            self.apply(self._init_weights)
        if af_prior is not None:  # the policy starts as the prior exactly (see af_prior above)
            nn.init.zeros_(self.af_decoder[-1].weight)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # NAP.init_weights: N(0, 0.01^2) weights and zero biases for modules whose type is exactly nn.Linear.
        # The attention's out_proj is a subclass upstream and keeps its default init; ours is marked instead.
        if type(m) is nn.Linear and not getattr(m, "_nap_keep_init", False):
            m.weight.data.normal_(0.0, 0.01)
            m.bias.data.zero_()

    def forward(self, hist_x: torch.Tensor, hist_y: torch.Tensor, hist_valid: torch.Tensor, cand_x: torch.Tensor,
                features: torch.Tensor, af_name: str | None = None, need_af: bool = True,
                split: bool | None = None, cache: dict[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Scores every candidate given the history.

        Args:
            hist_x: ``[B, H, D]`` observed inputs (rows where ``hist_valid`` is false are padding, ignored).
            hist_y: ``[B, H]`` their normalised values.
            hist_valid: ``[B, H]`` bool.
            cand_x: ``[B, N, D]`` candidates.
            features: ``[B, 2]`` = ``[incumbent, t / T]``.
            af_name: overrides the acquisition for this call (``"ei"`` is the likelihood-only ablation).
            need_af: ``False`` skips the acquisition head (the likelihood pass needs only the buckets).
            split: encode the history and the candidates apart (:meth:`NAPEncoderLayer.forward_split`: no
                ``(H + N) x H`` mask, and the candidates' first-layer projections can be cached); ``None``
                (default) does so whenever it is exact in law: no gradient, no active dropout and an all-valid
                history, i.e. when deciding. ``False`` is the reference path (the one training uses).
            cache: a dict kept by the caller across the steps of one run on the same ``cand_x`` (e.g.
                :class:`zoo.methods.bo.NAPStrategy`): the candidates' embedding and first-layer projections are stored in
                it on the first call and reused after (split path only).
        Returns:
            ``(af, bucket_logits, value)``: ``[B, N]`` acquisition / temperature (the policy logits for
            ``"mlp"``), ``[B, N, K]`` and ``[B]``.
        """
        af_name = af_name or self.af_name
        if split is None:
            split = (not torch.is_grad_enabled() and not (self.training and self.layers[0].self_attn.dropout > 0)
                     and bool(hist_valid.all()))
        if split:
            cand_emb, zc = self._encode_split(hist_x, hist_y, cand_x, cache)
        else:
            n_hist = hist_x.shape[1]
            x_emb = self.x_encoder(torch.cat([hist_x, cand_x], 1))
            z = x_emb.clone()
            z[:, :n_hist] = z[:, :n_hist] + self.y_encoder(hist_y.unsqueeze(-1))
            for layer in self.layers:
                z = layer(z, n_hist, hist_valid)
            cand_emb, zc = x_emb[:, n_hist:], z[:, n_hist:]
        logits = self.bucket_decoder(zc)
        incumbent = features[:, 0]
        value = self.value_head(features).squeeze(-1)
        if not need_af:
            return None, logits, value
        if af_name == "mlp":
            probs, emb = logits.softmax(-1), cand_emb
            if not self.joint:
                probs, emb = probs.detach(), emb.detach()
            feats = features[:, None, :].expand(-1, cand_x.shape[1], -1)
            af = self.af_decoder(torch.cat([probs, emb, feats], -1)).squeeze(-1)
            if self.af_prior == "log_ei":  # the same probabilities (detached or not, as the MLP's)
                af = af + torch.log(bar_ei_from_probs(probs, self.borders, incumbent[:, None]) + 1e-12)
        elif af_name == "ei":
            af = bar_ei(logits, self.borders, incumbent[:, None])
        else:
            af = bar_mean(logits, self.borders) + 2.0 * bar_std(logits, self.borders)
        return af / self.temperature, logits, value

    def _encode_split(self, hist_x: torch.Tensor, hist_y: torch.Tensor, cand_x: torch.Tensor,
                      cache: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate embeddings and encodings, the history and the candidates held apart; the candidates' part
        that depends on ``x`` alone (embedding, first-layer projections) comes from ``cache`` when it holds them
        for this ``cand_x``."""
        # the cache holds the very tensor it was computed from (so its memory cannot be reused by another) and
        # its version counter (an in-place change invalidates it; inference tensors cannot change in place)
        version = None if cand_x.is_inference() else cand_x._version
        if cache is not None and cache.get("x") is cand_x and cache.get("version") == version:
            cand_emb, qkv_c = cache["emb"], cache["qkv"]
        else:
            cand_emb = self.x_encoder(cand_x)
            attn = self.layers[0].self_attn
            qkv_c = F.linear(cand_emb, attn.in_proj_weight, attn.in_proj_bias) if len(self.layers) else None
            if cache is not None:
                cache.clear()
                cache.update(x=cand_x, version=version, emb=cand_emb, qkv=qkv_c)
        zh = self.x_encoder(hist_x) + self.y_encoder(hist_y.unsqueeze(-1))
        zc = cand_emb
        for i, layer in enumerate(self.layers):
            zh, zc = layer.forward_split(zh, zc, qkv_c if i == 0 else None)
        return cand_emb, zc


# ----------------------------------------------------------------------------------------------------------------
# Vectorised BO environment (pure tensors)
# ----------------------------------------------------------------------------------------------------------------
def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b, i]]`` for ``x`` of shape ``[B, N, ...]`` and ``idx`` of shape ``[B, M]``."""
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx.unsqueeze(-1).expand(*idx.shape, x.shape[-1]))


def bo_features(hist_y: torch.Tensor, hist_valid: torch.Tensor, t: torch.Tensor | float, horizon: float
                ) -> torch.Tensor:
    """NAP's global state ``[incumbent, t / T]``; an empty history's incumbent is 0, the normalised minimum
    (upstream uses the task's ``y_min``, which normalisation makes 0)."""
    if hist_y.shape[1]:
        inc = hist_y.masked_fill(~hist_valid, float("-inf")).max(1).values
        inc = torch.where(torch.isinf(inc), torch.zeros_like(inc), inc)
    else:
        inc = hist_y.new_zeros(hist_y.shape[0])
    t = torch.as_tensor(t, dtype=hist_y.dtype, device=hist_y.device).expand(hist_y.shape[0])
    return torch.stack([inc, t / horizon], -1)


# ----------------------------------------------------------------------------------------------------------------
# The LightningModule
# ----------------------------------------------------------------------------------------------------------------
ARCHITECTURE_ARGS = ("input_dim", "d_model", "n_layers", "n_heads", "dim_feedforward", "dropout", "n_buckets",
                     "y_low", "y_high", "af_name", "af_hidden", "joint_model_af_training", "temperature")


def upgrade_legacy_init_args(init_args: dict[str, Any]) -> dict[str, Any]:
    """Map the flat ``NAPModule`` arguments of checkpoints written before the network was injected to today's.

    The one place old NAP configs are translated: the architecture arguments become ``network`` (a
    :class:`NAPNetwork` class_path), ``lr`` an Adam ``optimizer`` and ``warmup_iterations``/``max_iterations`` a
    :class:`zoo.training.schedulers.WarmupLinearDecay` ``scheduler``. Arguments already in today's form pass unchanged. The
    state-dict keys did not change (the network is still ``net``), so old weights load as they are.
    """
    if "network" in init_args:
        return dict(init_args)
    old = dict(init_args)
    net = {k: old.pop(k) for k in ARCHITECTURE_ARGS if k in old}
    if "input_dim" not in net:
        raise ValueError(f"NAP init_args have neither 'network' nor the legacy 'input_dim': {sorted(init_args)}")
    new: dict[str, Any] = {"network": {"class_path": "zoo.methods.nap.NAPNetwork", "init_args": net}}
    lr = old.pop("lr", 3e-5)
    warmup, total = old.pop("warmup_iterations", 20), old.pop("max_iterations", 2000)
    new["optimizer"] = {"class_path": "torch.optim.Adam", "init_args": {"lr": lr}}
    new["scheduler"] = {"class_path": "zoo.training.schedulers.WarmupLinearDecay",
                        "init_args": {"warmup_steps": warmup, "total_steps": total}}
    new.update(old)
    return new


class NAPModule(ZooModule):
    """NAP trained with PPO plus the auxiliary likelihood loss, over batches of BO tasks.

    A batch is a dict of tasks from :mod:`datamodules.bo.tasks`: ``x`` ``[B, N, D]`` candidates, ``y`` ``[B, N]``
    values min-max normalised per task (maximised), ``valid`` ``[B, N]`` (false on padding), ``init`` ``[B, n0]``
    indices of the initial design, ``index`` ``[B]``. One ``training_step`` is one PPO iteration of the official
    code: roll out one episode of ``horizon`` steps per task from the batch's initial design (official: none),
    i.e. ``B * horizon`` transitions (official 60 x 24 = 1440), compute GAE, then ``ppo_epochs`` passes over
    shuffled minibatches with gradient accumulation.

    The loss (``ppo_nap.py``) is ``ppo_coeff * L_PPO + value_coeff * L_V + ce_coeff * L_NLL + ent_coeff * L_ent``.
    With ``sl_iid`` (official HPO setting ``NAP-SLiidRL``, ``SL_iid_fast``) ``L_NLL`` comes from a separate forward
    pass whose context is ``n ~ U{1, ..., n0 + horizon - 1}`` candidates drawn uniformly with replacement with their
    true values, and whose targets are all candidates. With ``ppo_coeff = value_coeff = 0`` no rollout is needed
    and the module trains the likelihood head alone (the "likelihood-only" ablation, used with ``eval_af="ei"``).

    Validation and test run the greedy policy (argmax over not-yet-evaluated candidates) for ``eval_budget`` steps
    from the batch's initial design and log the normalised simple regret ``y* - max y`` (mean and 95% CI over
    runs, through the evaluation template of :class:`zoo.training.base.ZooModule`) at the end of the budget (``val/regret``),
    after 10 and 25 trials (``val/regret@10`` ...), the mean ``log10`` regret and the number of runs (``val/runs``);
    ``records[stage]`` holds one row per run (``run``, those values and the regret ``curve``).

    Args:
        network: the transformer neural process, :class:`NAPNetwork` (its ``init_args`` are the architecture;
            the official one is 512 wide, 6 layers, 4 heads, 1,000 buckets).
        top_k: training actions are sampled among the top-k logits (official 5).
        horizon: episode length T of training rollouts (official 24).
        gamma, gae_lambda: discount and GAE lambda (official 0.98, 0.98).
        clip_epsilon: PPO clip (official 0.15).
        ppo_coeff, value_coeff, ce_coeff, ent_coeff: loss weights (official 1, 1, 1, 0).
        normalize_advantages: per-minibatch advantage normalisation (official true).
        sl_iid: i.i.d. random context for the NLL (official true for HPO); false uses the BO trajectory context.
        ppo_epochs, minibatch_size, grad_accumulation, grad_clip: official 1, 8, 4 (low-memory profile), 0.5.
        eval_budget: BO steps of a validation/test episode (the t/T feature uses T = eval_budget).
        eval_af: acquisition used at evaluation: ``"mlp"`` (the policy) or ``"ei"`` (likelihood head + EI).
        stage: ``"ppo"`` (the official training: PPO + value + auxiliary NLL) or ``"likelihood"``: the
            pre-training stage, in which each optimiser step is one NLL pass over the batch's tasks, each task
            with its own i.i.d. random context (no rollout, no policy or value loss). [INTERP] The paper trains
            both at once from scratch; on our CPU budget the jointly trained network never learned to condition
            on its context (held-out NLL flat from 5 to 55 points), so the likelihood head is first trained on
            >= 1e4 task draws with contexts up to the evaluation budget, then PPO starts from it (``init_from``).
        nll_max_context: largest i.i.d. context of the NLL pass; ``None`` is the official ``n0 + horizon - 1``
            (23 for training episodes of 24 steps), which never shows the model the 55-point histories of a
            5 + 50 evaluation run.
        regret_floor, normalise_rewards: the reward ``-log10(max(floor, regret))`` (official floor 1e-20, not
            normalised), divided by ``-log10(floor)`` when normalised; see :func:`neg_log10_regret`.
        init_from: a weights file (``zoo.methods.bo.save_nap`` safetensors or a Lightning ``.ckpt``; a path inside the
            repository resolves from any working directory) or a registry name (``nap-sl-hartmann3``) whose network
            weights are loaded when fitting starts (not when resuming): PPO fine-tuning from the pre-trained
            likelihood stage. Only the network is loaded; optimiser and iteration count start afresh.
        seed: keys the rollout sampling and minibatch order (same seed, same training).
        optimizer: as in :class:`zoo.training.base.ZooModule` (official: Adam, lr 3e-5).
        scheduler: stepped once per PPO iteration (official: linear warm-up over 20 iterations then linear decay
            to 0 at 2,000, :class:`zoo.training.schedulers.WarmupLinearDecay`); none keeps the lr constant.
    """

    item_key, count_name, ci_names, prog_bar_stages = "run", "runs", ("regret",), ()

    def __init__(self, network: nn.Module, top_k: int = 5, horizon: int = 24, gamma: float = 0.98,
                 gae_lambda: float = 0.98, clip_epsilon: float = 0.15, ppo_coeff: float = 1.0,
                 value_coeff: float = 1.0, ce_coeff: float = 1.0, ent_coeff: float = 0.0,
                 normalize_advantages: bool = True, sl_iid: bool = True, ppo_epochs: int = 1,
                 minibatch_size: int = 8, grad_accumulation: int = 4, grad_clip: float = 0.5, eval_budget: int = 50,
                 eval_af: str | None = None, stage: str = "ppo", nll_max_context: int | None = None,
                 regret_floor: float = REWARD_FLOOR, normalise_rewards: bool = False, init_from: str | None = None,
                 seed: int = 0, optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        if not all(hasattr(network, a) for a in ("input_dim", "af_name", "borders")):
            raise TypeError(f"network must be a zoo.methods.nap.NAPNetwork (input_dim, af_name, borders), got "
                            f"{type(network).__name__}")
        if horizon < 1 or eval_budget < 1:
            raise ValueError(f"horizon and eval_budget must be >= 1, got {horizon}, {eval_budget}")
        if minibatch_size < 1 or grad_accumulation < 1 or ppo_epochs < 1:
            raise ValueError("minibatch_size, grad_accumulation and ppo_epochs must be >= 1")
        if eval_af not in (None, "mlp", "ei", "ucb"):
            raise ValueError(f"eval_af must be None, 'mlp', 'ei' or 'ucb', got {eval_af!r}")
        if stage not in ("ppo", "likelihood"):
            raise ValueError(f"stage must be 'ppo' or 'likelihood', got {stage!r}")
        if nll_max_context is not None and nll_max_context < 1:
            raise ValueError(f"nll_max_context must be >= 1 or None, got {nll_max_context}")
        if not 0 < regret_floor < 1:
            raise ValueError(f"regret_floor must be in (0, 1), got {regret_floor}")
        self.automatic_optimization = False
        self.net = network  # the attribute name is the prefix of the shipped weights' keys ("net.")
        self.iterations_done = 0  # PPO iterations; Lightning's global_step counts optimizer steps (several each)
        self.save_config()

    @property
    def input_dim(self) -> int:
        return int(self.net.input_dim)

    def inference_config(self) -> dict[str, Any]:
        """``class_path``/``init_args`` that rebuild this model for BO: the network's architecture and the
        evaluation settings, not the training ones (what a registry entry and :func:`zoo.methods.bo.save_nap` record)."""
        spec = getattr(self.net, "init_args", None)
        if not isinstance(spec, dict):
            raise TypeError(f"{type(self.net).__name__} records no init_args; cannot describe its architecture")
        network = {"class_path": f"{type(self.net).__module__}.{type(self.net).__qualname__}", "init_args": spec}
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "init_args": {"network": network, "eval_budget": self.hparams.eval_budget,
                              "eval_af": self.hparams.eval_af}}

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        dim = getattr(dm, "dim", None)
        if dim is not None and int(dim) != self.input_dim:
            raise ValueError(f"model.network.input_dim={self.input_dim} but the data ({type(dm).__name__}) is "
                             f"{dim}-dimensional; set model.init_args.network.init_args.input_dim: {dim}")

    # -- model ---------------------------------------------------------------------------------------------------
    def forward(self, hist_x: torch.Tensor, hist_y: torch.Tensor, hist_valid: torch.Tensor, cand_x: torch.Tensor,
                features: torch.Tensor, af_name: str | None = None):
        """See :meth:`NAPNetwork.forward`."""
        return self.net(hist_x, hist_y, hist_valid, cand_x, features, af_name)

    @property
    def borders(self) -> torch.Tensor:
        return self.net.borders

    @property
    def rl_enabled(self) -> bool:
        if self.hparams.get("stage", "ppo") == "likelihood":
            return False
        return self.hparams.ppo_coeff != 0 or self.hparams.value_coeff != 0 or self.hparams.ent_coeff != 0

    def on_fit_start(self) -> None:
        path = self.hparams.get("init_from")
        if path and self.iterations_done == 0:  # a resumed run keeps its own weights
            self.load_network_weights(path)

    def load_network_weights(self, path: str | Path) -> None:
        """Loads the network (``net.*``) weights of a ``zoo.methods.bo.save_nap`` safetensors file or a Lightning ``.ckpt``
        (``weights_only``); the architectures must match except for the acquisition MLP's output layer, which an
        ``af_prior`` network may take from a file that has one or not. ``path`` may also be a path inside the
        repository (``checkpoints/nap-sl-hartmann3.safetensors``, from any working directory) or a registry name
        (``nap-sl-hartmann3``, sha256-checked): :func:`zoo.hub.pretrained.weights_file`."""
        from zoo.hub.pretrained import weights_file

        try:
            path = weights_file(path)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"model.init_from={str(path)!r}: {err} (run the likelihood stage first, or give "
                                    f"a .safetensors written by zoo.methods.bo.save_nap or a .ckpt)") from None
        if not path.is_file():
            raise FileNotFoundError(f"model.init_from={str(path)!r}: no such weights file (run the likelihood stage "
                                    f"first, or give a .safetensors written by zoo.methods.bo.save_nap or a .ckpt)")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix == ".ckpt":
            from zoo.hub.checkpoint_io import load_checkpoint

            checkpoint = load_checkpoint(path)  # the one loader: weights_only, errors that name the file
            if not isinstance(checkpoint.get("state_dict"), dict):
                raise ValueError(f"model.init_from={str(path)!r}: a checkpoint without a 'state_dict'")
            state = checkpoint["state_dict"]
        else:
            raise ValueError(f"model.init_from={str(path)!r}: expected a .safetensors or .ckpt file")
        net_state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        if not net_state:
            raise ValueError(f"model.init_from={str(path)!r} holds no 'net.*' weights of a NAP model")
        mine = self.net.state_dict()
        bad = [f"{k}: {tuple(v.shape)} vs {tuple(mine[k].shape)}" for k, v in net_state.items()
               if k in mine and v.shape != mine[k].shape]
        missing = sorted(set(mine) - set(net_state))
        if bad or missing:
            raise ValueError(f"model.init_from={str(path)!r} does not fit this network: "
                             + "; ".join(bad + [f"missing {k}" for k in missing][:5]))
        self.net.load_state_dict(net_state)
        if self.net.af_prior is not None:
            # the pre-trained head acted by EI; the residual MLP of the policy starts at zero on top of it
            nn.init.zeros_(self.net.af_decoder[-1].weight)
            nn.init.zeros_(self.net.af_decoder[-1].bias)

    # -- acting --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, batch: dict[str, torch.Tensor], horizon: int, greedy: bool,
                generator: torch.Generator | None = None, af_name: str | None = None) -> dict[str, torch.Tensor]:
        """Runs one BO episode per task of ``batch``, all tasks in lock-step.

        Training (``greedy=False``): already evaluated candidates are masked, only the ``top_k`` logits are kept
        and the action is sampled (``NAP.act``). Evaluation (``greedy=True``): argmax over the candidates not yet
        evaluated. [INTERP] The official environment reshuffles the candidate order each step; the network is
        permutation-equivariant over candidates (no positional encoding, candidates independent), so that only
        changes how ties break and is not done here.

        Returns a dict with ``actions`` ``[B, T]``, ``logp`` ``[B, T]``, ``values`` ``[B, T]``, ``rewards``
        ``[B, T]``, ``proba_mask`` ``[B, T, N]`` (candidates excluded from the sampling distribution),
        ``features`` ``[B, T, 2]``, ``hist_idx`` ``[B, n0 + T]`` and ``incumbents`` ``[B, T + 1]`` (normalised
        best value after the initial design and after each step) and ``regret`` ``[B, T + 1]``.
        """
        x, y, valid, init = batch["x"], batch["y"], batch["valid"], batch["init"]
        bsz, n = y.shape
        n0 = init.shape[1]
        if n0 + horizon > int(valid.sum(1).min()):
            raise ValueError(f"an episode of {n0} initial points + {horizon} steps needs that many candidates; "
                             f"the smallest pool in the batch has {int(valid.sum(1).min())}")
        y_star = y.masked_fill(~valid, float("-inf")).max(1).values
        hist_idx = torch.zeros(bsz, n0 + horizon, dtype=torch.long, device=y.device)
        hist_idx[:, :n0] = init
        observed = torch.zeros(bsz, n, dtype=torch.bool, device=y.device)
        if n0:
            observed.scatter_(1, init, True)
        out = {k: torch.zeros(bsz, horizon, device=y.device) for k in ("logp", "values", "rewards")}
        out["actions"] = torch.zeros(bsz, horizon, dtype=torch.long, device=y.device)
        out["proba_mask"] = torch.zeros(bsz, horizon, n, dtype=torch.bool, device=y.device)
        out["features"] = torch.zeros(bsz, horizon, 2, device=y.device)
        ones = torch.ones(bsz, n0 + horizon, dtype=torch.bool, device=y.device)
        incumbents = torch.zeros(bsz, horizon + 1, device=y.device)
        if n0:  # an empty history's incumbent is 0, the normalised minimum (as upstream's y_min)
            incumbents[:, 0] = gather_rows(y, init).max(1).values
        for t in range(horizon):
            h = n0 + t
            hx, hy = gather_rows(x, hist_idx[:, :h]), gather_rows(y, hist_idx[:, :h])
            feats = bo_features(hy, ones[:, :h], t, horizon)
            af, _, value = self.net(hx, hy, ones[:, :h], x, feats, af_name)
            blocked = observed | ~valid
            logits = af.masked_fill(blocked, float("-inf"))
            if greedy:
                action = logits.argmax(-1)
                pmask = blocked
            else:
                pmask = blocked | top_k_mask(logits, self.hparams.top_k)
                probs = torch.softmax(logits.masked_fill(pmask, float("-inf")), -1)
                action = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            logp = torch.log_softmax(logits.masked_fill(pmask, float("-inf")), -1).gather(1, action[:, None])[:, 0]
            hist_idx[:, h] = action
            observed.scatter_(1, action[:, None], True)
            incumbents[:, t + 1] = torch.maximum(incumbents[:, t], y.gather(1, action[:, None])[:, 0])
            out["actions"][:, t], out["logp"][:, t], out["values"][:, t] = action, logp, value
            out["rewards"][:, t] = neg_log10_regret(y_star, incumbents[:, t + 1], self.hparams.get(
                "regret_floor", REWARD_FLOOR), self.hparams.get("normalise_rewards", False))
            out["proba_mask"][:, t], out["features"][:, t] = pmask, feats
        out["hist_idx"], out["incumbents"] = hist_idx, incumbents
        out["regret"] = (y_star[:, None] - incumbents).clamp_min(0)
        return out

    # -- training ------------------------------------------------------------------------------------------------
    def _minibatches(self, n_items: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(n_items, generator=generator)
        for start in range(0, n_items, self.hparams.minibatch_size):
            yield order[start:start + self.hparams.minibatch_size]

    def _policy_terms(self, batch: dict[str, torch.Tensor], roll: dict[str, torch.Tensor], b: torch.Tensor,
                      t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-evaluates transitions ``(b_m, t_m)`` under the current parameters: values, log-probs, entropies and
        the bucket logits of the trajectory context (``predict_vals_logps_ents``)."""
        n0 = batch["init"].shape[1]
        h = n0 + int(t.max())
        hist_idx = roll["hist_idx"][b, :h]
        hist_valid = torch.arange(h, device=t.device)[None, :] < (n0 + t)[:, None]
        x, y = batch["x"][b], batch["y"][b]
        af, logits, value = self.net(gather_rows(x, hist_idx), gather_rows(y, hist_idx), hist_valid, x,
                                     roll["features"][b, t])
        pol = af.masked_fill(roll["proba_mask"][b, t], float("-inf"))
        logp = torch.log_softmax(pol, -1).gather(1, roll["actions"][b, t][:, None])[:, 0]
        entropy = categorical_entropy(pol)
        return value, logp, entropy, logits

    def _iid_nll(self, batch: dict[str, torch.Tensor], b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The auxiliary loss on an i.i.d. random context (``SL_iid_fast``): context sizes ``U{1..n0+T-1}`` (or
        ``U{1..nll_max_context}``), context points drawn uniformly with replacement from the valid candidates, all
        candidates as targets."""
        hp = self.hparams
        x, y, valid = batch["x"][b], batch["y"][b], batch["valid"][b]
        m = b.numel()
        max_ctx = hp.get("nll_max_context") or max(1, batch["init"].shape[1] + hp.horizon - 1)
        n_ctx = torch.randint(1, max_ctx + 1, (m,), generator=generator).to(x.device) if max_ctx > 1 else \
            torch.ones(m, dtype=torch.long, device=x.device)
        width = int(n_ctx.max())
        ctx = torch.multinomial(valid.float().cpu(), width, replacement=True, generator=generator).to(x.device)
        ctx_valid = torch.arange(width, device=x.device)[None, :] < n_ctx[:, None]
        hy = gather_rows(y, ctx)
        feats = bo_features(hy, ctx_valid, 0.0, 1.0)
        _, logits, _ = self.net(gather_rows(x, ctx), hy, ctx_valid, x, feats, need_af=False)
        return bar_nll(logits, y, self.borders, valid.float())

    def _traj_nll(self, batch: dict[str, torch.Tensor], b: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return bar_nll(logits, batch["y"][b], self.borders, batch["valid"][b].float())

    def _likelihood_step(self, batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        """One optimiser step of the likelihood stage: the NLL of every task of the batch under its own random
        context."""
        opt, sched = self.optimizers(), self.lr_schedulers()
        loss = self._iid_nll(batch, torch.arange(batch["y"].shape[0], device=batch["y"].device), g)
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        if sched is not None:
            sched.step()
        self.iterations_done += 1
        bsz = batch["y"].shape[0]
        self.log_dict({"train/loss": loss.detach(), "train/loss_nll": loss.detach()}, batch_size=bsz)
        self.log("train/lr", float(opt.optimizer.param_groups[0]["lr"]), batch_size=bsz)
        return loss.detach()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        it = self.iterations_done
        g = key_generator(hp.seed, "nap-train", self.trainer.global_rank if self._trainer else 0, it)
        if hp.get("stage", "ppo") == "likelihood":
            return self._likelihood_step(batch, g)
        opt = self.optimizers()
        sched = self.lr_schedulers()
        bsz = batch["y"].shape[0]
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("loss", "ppo", "value", "nll", "entropy")}
        if self.rl_enabled:
            self.net.eval()
            roll = self.rollout(batch, hp.horizon, greedy=False, generator=g)
            self.net.train()
            adv, returns = gae(roll["rewards"], roll["values"], hp.gamma, hp.gae_lambda)
            self.log_dict({"train/episode_return": roll["rewards"].sum(1).mean(),
                           "train/regret": roll["regret"][:, -1].mean()}, batch_size=bsz)
            n_items = bsz * hp.horizon
        else:
            roll, adv, returns = None, None, None
            n_items = bsz * hp.horizon  # same number of minibatches as an RL iteration
        n_mb = 0
        opt.zero_grad()
        for _ in range(hp.ppo_epochs):
            for mb in self._minibatches(n_items, g):
                mb = mb.to(batch["y"].device)
                b, t = mb // hp.horizon, mb % hp.horizon
                loss = batch["y"].new_zeros(())
                if roll is not None:
                    value, logp, entropy, traj_logits = self._policy_terms(batch, roll, b, t)
                    a = adv[b, t]
                    if hp.normalize_advantages:
                        a = normalise_advantages(a)
                    l_ppo = ppo_clip_loss(logp, roll["logp"][b, t], a, hp.clip_epsilon)
                    l_v = ppo_value_loss(value, returns[b, t])
                    l_ent = -entropy.mean()
                    loss = loss + hp.ppo_coeff * l_ppo + hp.value_coeff * l_v + hp.ent_coeff * l_ent
                    stats["ppo"].append(l_ppo.detach()), stats["value"].append(l_v.detach())
                    stats["entropy"].append(entropy.mean().detach())
                if hp.ce_coeff != 0:
                    if hp.sl_iid or roll is None:
                        l_nll = self._iid_nll(batch, b, g)
                    else:
                        l_nll = self._traj_nll(batch, b, traj_logits)
                    loss = loss + hp.ce_coeff * l_nll
                    stats["nll"].append(l_nll.detach())
                # upstream sums the minibatch gradients of an accumulation window (no division), then clips
                self.manual_backward(loss)
                stats["loss"].append(loss.detach())
                n_mb += 1
                if n_mb % hp.grad_accumulation == 0:
                    self.clip_gradients(opt, gradient_clip_val=hp.grad_clip, gradient_clip_algorithm="norm")
                    opt.step()
                    opt.zero_grad()
        if n_mb % hp.grad_accumulation:
            # a partial window at the end of the iteration still counts (the official loop drops it silently)
            self.clip_gradients(opt, gradient_clip_val=hp.grad_clip, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
        if sched is not None:
            sched.step()
        self.iterations_done += 1
        logs = {f"train/{'loss' if k == 'loss' else k if k == 'entropy' else 'loss_' + k}": torch.stack(v).mean()
                for k, v in stats.items() if v}
        self.log_dict(logs, prog_bar=False, batch_size=bsz)
        self.log("train/lr", float(opt.optimizer.param_groups[0]["lr"]), batch_size=bsz)
        return logs["train/loss"]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nap_iterations"] = self.iterations_done

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.iterations_done = int(checkpoint.get("nap_iterations", 0))

    # -- evaluation ----------------------------------------------------------------------------------------------
    def evaluate_batch(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """Each task's greedy BO run of ``eval_budget`` trials: ``curve`` ``[runs, eval_budget + 1]``, the regret
        after each trial."""
        af = self.hparams.eval_af or self.net.af_name
        roll = self.rollout(batch, self.hparams.eval_budget, greedy=True, af_name=af)
        return {"index": batch["index"].detach(), "curve": roll["regret"].detach().float()}

    def summarise_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor]
                        ) -> list[dict[str, Any]]:
        """The regret at the end of the budget (``regret``, mean +- 95% CI over runs), after 10 and 25 trials, its
        ``log10``; ``records[stage]`` rows hold these and the whole ``curve``."""
        curve = values["curve"]
        final = curve[:, -1]
        values = {"regret": final, "log10_regret": torch.log10(final.clamp_min(1e-6)), "curve": curve}
        for k in (10, 25):
            if k < curve.shape[1] - 1:
                values[f"regret@{k}"] = curve[:, k]
        return super().summarise_items(stage, index, values)
