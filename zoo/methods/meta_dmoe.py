"""Meta-DMoE (Zhong et al., NeurIPS 2022): test-time adaptation by meta-distillation from a mixture of domain
experts. Official code: github.com/n3il666/Meta-DMoE; the spec this follows is ``shared/methods/
meta-dmoe_meta-rtl_nap.md`` section 1.

N experts, each trained on one super-domain of the source domains, are frozen; a transformer aggregator reads
their N features of an image (one token per expert) and returns one teacher feature. The student (feature
extractor theta_e, linear classifier theta_c) adapts to an unlabelled target batch with **one** gradient step of
theta_e on the distance between its feature and the teacher's; meta-training makes that step useful (Algorithm 1):

    Z'  = expert features of the support, the support domain's own expert masked     (simulates an unseen domain)
    L_in  = MSE( A(Z'; phi), f_e(x_SU; theta_e) )                                     (eq. 2)
    theta_e' = theta_e - alpha grad L_in                                              (one step, theta_c fixed)
    L_out = CE( y_Q, f_c(f_e(x_Q; theta_e'); theta_c) ) -> (phi, theta_e, theta_c)    (eq. 3, second order)

The four stages of the official ``run.py`` are epoch ranges of one ``zoo fit`` (``stage_epochs``): A experts,
B aggregator pre-training (all N experts, its own classification head), C student ERM, D meta-distillation. At
the end of each stage a checkpoint ``stage-<A|B|C|D>.ckpt`` is written (``stage_dir``); ``--ckpt_path`` on one of
them resumes the fit at the next stage. Validation scores what the current stage trains (A: the experts' averaged
prediction, B: the aggregator's head, C: the unadapted student, D: the adapted student); test runs the protocol of
section 1.7 per target domain (first batch of ``eval_batch_size`` adapts, every batch is predicted) for every
method of ``eval_methods`` on the same domains, so baselines are paired with Meta-DMoE.

Paper vs code (spec 1.11), as decided here:

1. super-domains: the official seeded random partition (data config ``super_domain_method``; k-means is the switch);
2. mask: ``mask="remove"`` drops the masked expert's token (official code, N-1 tokens); ``"zero"`` multiplies it
   by 0 (the paper's wording); ``"none"`` is the "w/o mask" ablation;
3. distillation loss: MSE averaged over batch and feature dimensions (official code; the paper's squared L2 norm
   is the same up to a factor d that ``inner_lr`` absorbs);
4. meta-batch: ``groups_per_batch`` single-domain episodes per optimiser step (official 1; Algorithm 1 allows B);
5. epochs and learning-rate decay: ``stage_epochs`` and ``lr_decay`` (per epoch within a stage; optimiser state is
   reset at each stage start as the official code re-creates its optimisers);
6. BatchNorm in stage D: ``meta_batchnorm="frozen"`` (default, official: the whole model in eval mode, running
   statistics) or ``"batch"`` (train-mode statistics of each batch);
7. which parameters adapt: ``adapt="backbone"`` (all of theta_e, official) or a list of parameter-name prefixes
   (e.g. the last block only, for large backbones); always second order in training (``first_order`` switch
   exists for cost studies: a first-order step leaves the aggregator without any stage-D gradient).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from zoo.nn.backbones import BackboneWithHead
from zoo.training.base import ZooModule
from zoo.training.inner_loop import adapt as inner_adapt
from zoo.training.inner_loop import functional_forward, select
from zoo.training.metrics import macro_f1

STAGES = ("A", "B", "C", "D")
#: What validation scores in each stage (module docstring).
STAGE_METHOD = {"A": "experts_avg", "B": "aggregator_head", "C": "erm", "D": "meta_dmoe"}
EVAL_METHODS = ("meta_dmoe", "erm", "erm_bn", "experts_avg", "aggregator_head")
MASKS = ("remove", "zero", "none")


# ---------------------------------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------------------------------
def mask_experts(tokens: torch.Tensor, expert: torch.Tensor, mode: str = "remove") -> torch.Tensor:
    """Hide each item's in-domain expert from the aggregator (Algorithm 1, line "mask"; official ``mask_feat``).

    Args:
        tokens: ``[B, N, d]`` expert features of B items.
        expert: ``[B]`` index of the expert trained on each item's domain.
        mode: ``"remove"`` returns ``[B, N - 1, d]`` without that token (official code, ``exclude=True``);
            ``"zero"`` returns ``[B, N, d]`` with it multiplied by 0 (the paper's description); ``"none"`` returns
            the tokens unchanged (the "w/o mask" ablation).
    """
    if mode == "none":
        return tokens
    b, n, _ = tokens.shape
    expert = expert.reshape(-1).to(tokens.device)
    if expert.numel() != b:
        raise ValueError(f"mask_experts: {b} items but {expert.numel()} expert indices")
    if bool(((expert < 0) | (expert >= n)).any()):
        raise ValueError(f"mask_experts: expert indices must be in 0..{n - 1}, got {sorted(set(expert.tolist()))}")
    keep = torch.arange(n, device=tokens.device).unsqueeze(0) != expert.unsqueeze(1)  # [B, N]
    if mode == "zero":
        return tokens * keep.unsqueeze(-1).to(tokens.dtype)
    if mode != "remove":
        raise ValueError(f"mask_experts: mode must be one of {MASKS}, got {mode!r}")
    return tokens[keep].reshape(b, n - 1, -1)


def distillation_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Eq. 2's distance between the aggregated teacher feature and the student's, ``[B, d]`` each: the mean of
    squared differences over batch and features (the official ``l2_loss``; see the module docstring, item 3)."""
    if teacher.shape != student.shape:
        raise ValueError(f"distillation_loss: teacher {tuple(teacher.shape)} and student {tuple(student.shape)} "
                         "features differ in shape")
    return (teacher - student).pow(2).mean()


class PreNormAggregator(nn.Module):
    """The knowledge aggregator A(.; phi) (section 4.2; official ``src/transformer.py`` + ``fa_selector``).

    Tokens ``[B, N', d]`` (one per expert, no position or expert-identity embedding, so the output does not
    depend on the experts' order and N' may differ between training and test) go through ``depth`` PreNorm
    blocks ``X = X + MHA(LN(X)); X = X + FFN(LN(X))`` (FFN: Linear(d, mlp_ratio d), GELU, dropout, Linear, dropout);
    the teacher feature is the mean over tokens (``features``). ``forward`` adds LayerNorm and a linear head, used
    only in the aggregator's supervised pre-training (stage B). ``pool="mean_tokens"`` skips the blocks: the
    teacher is the plain mean of the expert features (the "average" aggregator ablation of the paper). The
    blocks exist either way, so the ablation resumes from the same stage checkpoints as the full method.
    """

    def __init__(self, dim: int, num_classes: int, depth: int = 1, heads: int = 16, mlp_ratio: int = 2,
                 dropout: float = 0.1, pool: str = "transformer"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"aggregator: feature dim {dim} is not divisible by heads={heads}")
        if pool not in ("transformer", "mean_tokens"):
            raise ValueError(f"aggregator: pool must be 'transformer' or 'mean_tokens', got {pool!r}")
        self.pool = pool
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim),
                "attn": nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True),
                "norm2": nn.LayerNorm(dim),
                "ffn": nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))}))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N', d]`` expert tokens -> ``[B, d]`` teacher feature."""
        if self.pool == "mean_tokens":
            return tokens.mean(1)
        x = tokens
        for blk in self.blocks:
            h = blk["norm1"](x)
            x = x + blk["attn"](h, h, h, need_weights=False)[0]
            x = x + blk["ffn"](blk["norm2"](x))
        return x.mean(1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))


def reinitialise(module: nn.Module) -> nn.Module:
    """Fresh weights for every layer of a copied module (experts and the student must not share an init)."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return module


def recalibrated_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose BatchNorm layers use the statistics of ``x`` alone (test-time BN, the
    "ERM + test-time BN statistics" baseline; the ARM-BN idea): running statistics reset, one train-mode
    forward pass with cumulative averaging (``momentum=None``) over ``x``, then eval mode."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    out.train()
    with torch.no_grad():
        out(x)
    return out.eval()


# ---------------------------------------------------------------------------------------------------------------
# The system
# ---------------------------------------------------------------------------------------------------------------
class MetaDMoE(ZooModule):
    """Meta-DMoE: experts (A), aggregator pre-training (B), student ERM (C), meta-distillation (D); module docstring.

    Args:
        backbone: the feature extractor every expert and the student copy; any module mapping images to
            ``[B, out_dim]`` with an int ``out_dim`` (``zoo.Conv4``, ``zoo.ResNet12``,
            ``zoo.nn.backbones.HFImageEncoder`` for a Hugging Face model directory).
        num_classes: the shared label space.
        num_experts: N, equal to the data config's ``super_domains``.
        stage_epochs: epochs of stages A, B, C, D (a 0 skips a stage, e.g. B for ``aggregator: mean_tokens``);
            ``trainer.max_epochs`` must be their sum (a ``fast_dev_run`` runs one batch of stage A instead).
        expert_lr, aggregator_pretrain_lr, student_pretrain_lr: Adam learning rates of stages A, B, C.
        aggregator_lr, student_lr: outer learning rates of stage D (official ``tlr`` for phi, ``slr`` for theta).
        inner_lr: alpha, the step size of the one inner step (official ``ilr``), in training and at test.
        inner_steps: inner steps in training and at test (1 in the paper and code).
        first_order: detach the inner gradient (cost studies only; the aggregator then learns nothing in D).
        mask: ``"remove"`` / ``"zero"`` / ``"none"`` (:func:`mask_experts`).
        aggregator: ``"transformer"`` or ``"mean_tokens"`` (the mean-pooling ablation; no stage-B training needed).
        aggregator_depth, aggregator_heads, aggregator_dropout: the aggregator's size (official 1, 16, 0.1).
        adapt: ``"backbone"`` (all of theta_e) or a list of parameter-name prefixes under ``backbone.``.
        meta_batchnorm: ``"frozen"`` (official) or ``"batch"``; see the module docstring, item 6.
        lr_decay: per-epoch factor on the current stage's learning rate (official 0.96 on iWildCam; 1 = constant).
        eval_methods: what test scores on every target domain: ``meta_dmoe`` (adapted student), ``erm`` (student
            as is), ``erm_bn`` (student with test-time BN statistics of the adaptation batch), ``experts_avg``
            (mean of the experts' softmax), ``aggregator_head`` (the stage-B classifier on all N experts).
        metric: ``"accuracy"`` or ``"macro_f1"`` (iWildCam): the per-domain score called ``acc`` in logs is
            accuracy either way; ``macro_f1`` is added per domain when asked.
        stage_dir: where stage checkpoints go (default ``<log dir>/stages``).
        fresh_init: give every expert and the student fresh weights (backbones trained from scratch); ``False``
            keeps the backbone's own weights in each copy, as the official ImageNet-initialised experts and student
            (``zoo.nn.backbones.HFImageEncoder`` with a pretrained model directory).
        optimizer: the optimiser class every stage uses (its lr is set per stage from the arguments above).
    """

    item_key = "domain_index"

    def __init__(self, backbone: nn.Module, num_classes: int, num_experts: int = 4,
                 stage_epochs: list[int] | None = None, expert_lr: float = 1e-3, aggregator_pretrain_lr: float = 1e-3,
                 student_pretrain_lr: float = 1e-3, aggregator_lr: float = 1e-4, student_lr: float = 1e-4,
                 inner_lr: float = 0.1, inner_steps: int = 1, first_order: bool = False, mask: str = "remove",
                 aggregator: str = "transformer", aggregator_depth: int = 1, aggregator_heads: int = 4,
                 aggregator_dropout: float = 0.1, adapt: str | list[str] = "backbone",
                 meta_batchnorm: str = "frozen", lr_decay: float = 1.0, eval_methods: list[str] | None = None,
                 metric: str = "accuracy", stage_dir: str | None = None, fresh_init: bool = True,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        name = type(self).__name__
        stage_epochs = list(stage_epochs if stage_epochs is not None else [5, 2, 5, 5])
        if len(stage_epochs) != 4 or any(int(e) < 0 for e in stage_epochs) or sum(stage_epochs) < 1:
            raise ValueError(f"{name}: stage_epochs must be 4 non-negative epoch counts (A, B, C, D) with a positive "
                             f"sum, got {stage_epochs}")
        if num_experts < 1 or num_classes < 2:
            raise ValueError(f"{name}: need num_experts >= 1 and num_classes >= 2, got {num_experts}, {num_classes}")
        if mask not in MASKS:
            raise ValueError(f"{name}: mask must be one of {MASKS}, got {mask!r}")
        if mask == "remove" and num_experts < 2:
            raise ValueError(f"{name}: mask 'remove' needs num_experts >= 2 (one expert is left to the aggregator)")
        if meta_batchnorm not in ("frozen", "batch"):
            raise ValueError(f"{name}: meta_batchnorm must be 'frozen' or 'batch', got {meta_batchnorm!r}")
        if metric not in ("accuracy", "macro_f1"):
            raise ValueError(f"{name}: metric must be 'accuracy' or 'macro_f1', got {metric!r}")
        eval_methods = list(eval_methods or ["meta_dmoe"])
        unknown = [m for m in eval_methods if m not in EVAL_METHODS]
        if unknown:
            raise ValueError(f"{name}: eval_methods {unknown} are not among {list(EVAL_METHODS)}")
        if inner_steps < 0 or not inner_lr > 0:
            raise ValueError(f"{name}: need inner_steps >= 0 and inner_lr > 0, got {inner_steps}, {inner_lr}")
        self.save_config()
        self.automatic_optimization = False
        self.num_classes, self.num_experts = num_classes, num_experts
        self.stage_epochs = [int(e) for e in stage_epochs]
        self.lrs = {"A": expert_lr, "B": aggregator_pretrain_lr, "C": student_pretrain_lr,
                    "D": (aggregator_lr, student_lr)}
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.mask, self.meta_batchnorm, self.lr_decay = mask, meta_batchnorm, lr_decay
        self.eval_methods, self.metric, self.stage_dir = eval_methods, metric, stage_dir
        def copy_of(module: nn.Module) -> nn.Module:
            return reinitialise(copy.deepcopy(module)) if fresh_init else copy.deepcopy(module)

        self.experts = nn.ModuleList([BackboneWithHead(copy_of(backbone), num_classes) for _ in range(num_experts)])
        self.student = BackboneWithHead(copy_of(backbone), num_classes)
        dim = self.student.backbone.out_dim
        self.aggregator = PreNormAggregator(dim, num_classes, aggregator_depth, aggregator_heads,
                                            dropout=aggregator_dropout, pool=aggregator)
        backbone_names = [n for n, _ in self.student.named_parameters() if n.startswith("backbone.")]
        prefixes = ["backbone."] if adapt == "backbone" else [p if p.startswith("backbone.") else f"backbone.{p}"
                                                              for p in adapt]
        self.adapted_names = select(backbone_names, lambda n: any(n.startswith(p) for p in prefixes))
        # Which stages are complete; saved with the weights, so a checkpoint says what it holds.
        self.register_buffer("stages_done", torch.zeros((), dtype=torch.long))
        self._domain_state: dict[str, dict[str, Any]] = {}  # per stage: what a target domain's batches share

    # -- stages ------------------------------------------------------------------------------------------------
    def stage_of(self, epoch: int) -> str:
        """The stage an epoch belongs to (``stage_epochs`` ranges in order A, B, C, D)."""
        end = 0
        for stage, n in zip(STAGES, self.stage_epochs):
            end += n
            if epoch < end:
                return stage
        return "D"

    def stage_bounds(self, stage: str) -> tuple[int, int]:
        k = STAGES.index(stage)
        start = sum(self.stage_epochs[:k])
        return start, start + self.stage_epochs[k]

    @property
    def stage(self) -> str:
        return self.stage_of(self.current_epoch)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Three optimisers: experts (A), aggregator (B, D), student (C, D); learning rates set per stage."""
        groups = [self.experts.parameters(), self.aggregator.parameters(), self.student.parameters()]
        return [self.optimizer_factory([{"params": list(g)}]) for g in groups]

    def on_fit_start(self) -> None:
        total = sum(self.stage_epochs)
        if self.trainer.fast_dev_run:  # the smoke run: one epoch of one batch, so one step of stage A only
            return
        if self.trainer.max_epochs != total:
            raise ValueError(f"{type(self).__name__}: trainer.max_epochs is {self.trainer.max_epochs} but "
                             f"stage_epochs {self.stage_epochs} add up to {total}; set them to agree")

    def on_train_epoch_start(self) -> None:
        stage = self.stage
        start, _ = self.stage_bounds(stage)
        decay = self.lr_decay ** (self.current_epoch - start)
        opts = self.optimizers()
        lrs = {0: self.lrs["A"]} if stage == "A" else {1: self.lrs["B"]} if stage == "B" else \
            {2: self.lrs["C"]} if stage == "C" else {1: self.lrs["D"][0], 2: self.lrs["D"][1]}
        for k, lr in lrs.items():
            if self.current_epoch == start:
                opts[k].state.clear()  # a stage starts with a fresh optimiser, as the official code's new ones
            for g in opts[k].param_groups:
                g["lr"] = lr * decay

    def on_train_epoch_end(self) -> None:
        stage = self.stage
        if self.current_epoch + 1 != self.stage_bounds(stage)[1]:
            return
        self.stages_done.fill_(STAGES.index(stage) + 1)
        directory = Path(self.stage_dir) if self.stage_dir else Path(
            self.trainer.log_dir or self.trainer.default_root_dir) / "stages"
        # a full checkpoint (optimisers, loops): resuming from it continues the fit at the next stage
        self.trainer.save_checkpoint(directory / f"stage-{stage}.ckpt", weights_only=False)

    # -- features ----------------------------------------------------------------------------------------------
    def expert_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, d]`` features of the frozen experts (eval mode, no gradient: section 1.4 of the spec)."""
        self.experts.eval()
        with torch.no_grad():
            return torch.stack([e.backbone(x) for e in self.experts], 1)

    def teacher(self, x: torch.Tensor, expert: torch.Tensor | None = None) -> torch.Tensor:
        """The aggregated teacher feature of ``x``; ``expert`` (each item's in-domain expert) is masked."""
        tokens = self.expert_tokens(x)
        if expert is not None:
            tokens = mask_experts(tokens, expert, self.mask)
        return self.aggregator.features(tokens)

    def adapted_params(self, support_x: torch.Tensor, teacher: torch.Tensor,
                       first_order: bool) -> dict[str, torch.Tensor]:
        """theta_e' after ``inner_steps`` steps on the distillation loss of an unlabelled batch; theta_c untouched."""
        params = {n[len("backbone."):]: p for n, p in self.student.named_parameters() if n.startswith("backbone.")}
        which = [n[len("backbone."):] for n in self.adapted_names]
        return inner_adapt(params, lambda p: distillation_loss(
            teacher, functional_forward(self.student.backbone, p, support_x)), self.inner_steps, self.inner_lr,
            first_order, which=which)

    def adapted_logits(self, fast: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.student.head(functional_forward(self.student.backbone, fast, x))

    def meta_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage D on a batch of single-domain groups: mean outer cross-entropy and query accuracy."""
        losses, accs = [], []
        for g in range(batch["support_x"].shape[0]):
            sx, qx, qy = batch["support_x"][g], batch["query_x"][g], batch["query_y"][g]
            expert = None if self.mask == "none" else batch["expert"][g].expand(len(sx))
            fast = self.adapted_params(sx, self.teacher(sx, expert), self.first_order)
            logits = self.adapted_logits(fast, qx)
            losses.append(F.cross_entropy(logits, qy))
            accs.append((logits.argmax(-1) == qy).float().mean())
        return torch.stack(losses).mean(), torch.stack(accs).mean()

    # -- training ----------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        stage = self.stage
        expert = batch["expert"]
        if bool(((expert < 0) | (expert >= self.num_experts)).any()):
            raise ValueError(f"{type(self).__name__}: a batch names expert(s) {sorted(set(expert.tolist()))} but the "
                             f"model has num_experts={self.num_experts}; set the data config's super_domains to it")
        opt_experts, opt_agg, opt_student = self.optimizers()
        x = torch.cat([batch["support_x"], batch["query_x"]], 1)  # [G, S + Q, ...]: supervised stages use both
        y = torch.cat([batch["support_y"], batch["query_y"]], 1)
        if stage == "A":
            self.experts.train()
            # each group trains the expert of its super-domain
            losses, accs = [], []
            for g in range(x.shape[0]):
                logits = self.experts[int(expert[g])](x[g])
                losses.append(F.cross_entropy(logits, y[g]))
                accs.append((logits.argmax(-1) == y[g]).float().mean())
            loss, acc, opts = torch.stack(losses).mean(), torch.stack(accs).mean(), [opt_experts]
        elif stage == "B":
            self.aggregator.train()
            flat_x, flat_y = x.flatten(0, 1), y.flatten()
            logits = self.aggregator(self.expert_tokens(flat_x))
            loss, acc, opts = F.cross_entropy(logits, flat_y), (logits.argmax(-1) == flat_y).float().mean(), [opt_agg]
        elif stage == "C":
            self.student.train()
            flat_x, flat_y = x.flatten(0, 1), y.flatten()
            logits = self.student(flat_x)
            loss, acc = F.cross_entropy(logits, flat_y), (logits.argmax(-1) == flat_y).float().mean()
            opts = [opt_student]
        else:
            self.student.train(self.meta_batchnorm == "batch")
            self.aggregator.eval()  # official: the whole meta-training runs in eval mode (no dropout)
            loss, acc = self.meta_loss(batch)
            opts = [opt_agg, opt_student]
        for o in opts:
            o.zero_grad()
        self.manual_backward(loss)
        for o in opts:
            o.step()
        self.log_dict({"train/loss": loss.detach(), "train/acc": acc.detach(),
                       "train/stage": float(STAGES.index(stage))}, prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=x.shape[0])
        return loss.detach()

    # -- evaluation (section 1.7 protocol; dispatch, gathering and records: zoo.training.base.ZooModule) --------------------
    def _methods(self, stage: str) -> list[str]:
        return [STAGE_METHOD[self.stage]] if stage == "val" else list(self.eval_methods)

    def _primary(self, stage: str) -> str:
        """The method whose per-domain score is called ``acc`` (the others ``acc_<method>``)."""
        methods = self._methods(stage)
        return STAGE_METHOD[self.stage] if stage == "val" else ("meta_dmoe" if "meta_dmoe" in methods else methods[0])

    def evaluate_batch(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str
                       ) -> dict[str, torch.Tensor] | None:
        """Predict one batch of a target domain with every method; a domain's first batch first adapts (it is
        the unlabelled adaptation batch). Returns the domain's scores with its last batch (:meth:`_domain_items`)."""
        if torch.is_inference_mode_enabled():  # Lightning evaluates under inference mode; adaptation needs grads
            with torch.inference_mode(False):
                return self.evaluate_batch({k: v.clone() for k, v in batch.items()}, batch_idx, stage)
        x, y, k = batch["x"], batch["y"], int(batch["domain_index"])
        # what a domain's batches share: adapted weights, the test-time BN copy, its predictions so far
        state = self._domain_state.setdefault(stage, {"open": {}})
        methods = self._methods(stage)
        was_training = self.training
        self.eval()
        if bool(batch["first"]):
            # The domain's first batch is its unlabelled adaptation batch (labels unused here).
            start = time.perf_counter()
            if "meta_dmoe" in methods:
                with torch.enable_grad():
                    fast = self.adapted_params(x, self.teacher(x), first_order=True)
                state["fast"] = {n: t.detach() for n, t in fast.items()}
            seconds = time.perf_counter() - start
            if "erm_bn" in methods:
                state["bn_student"] = recalibrated_batchnorm(self.student, x)
            state["open"][k] = {"preds": defaultdict(list), "labels": [], "adapt_seconds": seconds,
                                "domain": int(batch["domain"])}
        domain = state["open"].get(k)
        if domain is None:
            raise ValueError(f"{type(self).__name__}: a {stage} batch of domain {k} came before the domain's first "
                             "(adaptation) batch; evaluate each domain's batches in order (datamodules.domains)")
        with torch.no_grad():
            tokens = self.expert_tokens(x) if {"experts_avg", "aggregator_head"} & set(methods) else None
            for m in methods:
                if m == "meta_dmoe":
                    logits = self.adapted_logits(state["fast"], x)
                elif m == "erm":
                    logits = self.student(x)
                elif m == "erm_bn":
                    logits = state["bn_student"](x)
                elif m == "experts_avg":
                    logits = torch.stack([e.head(tokens[:, i]).softmax(-1)
                                          for i, e in enumerate(self.experts)]).mean(0).log()
                else:
                    logits = self.aggregator(tokens)
                domain["preds"][m].append(logits.argmax(-1).cpu())
            domain["labels"].append(y.cpu())
        self.train(was_training)
        if "last" in batch and not bool(batch["last"]):
            return None
        return self._domain_items(stage, [k])

    def finish_items(self, stage: str) -> dict[str, torch.Tensor] | None:
        """Domains whose last batch never came (``limit_*_batches`` cut them short) are scored on what was seen."""
        state = self._domain_state.get(stage)
        open_domains = sorted(state["open"]) if state else []
        items = self._domain_items(stage, open_domains) if open_domains else None
        self._domain_state.pop(stage, None)
        return items

    def _domain_items(self, stage: str, domains: list[int]) -> dict[str, torch.Tensor]:
        """Per-domain scores of finished domains (their predictions are dropped): ``acc`` of the primary method,
        ``acc_<method>`` of the others (``macro_f1`` likewise when asked), ``adapt_seconds``, ``domain_id``."""
        open_domains = self._domain_state[stage]["open"]
        methods, primary = self._methods(stage), self._primary(stage)
        values: dict[str, list[float]] = defaultdict(list)
        for k in domains:
            domain = open_domains.pop(k)
            y = torch.cat(domain["labels"])
            for m in methods:
                pred = torch.cat(domain["preds"][m])
                values["acc" if m == primary else f"acc_{m}"].append(float((pred == y).float().mean()))
                if self.metric == "macro_f1":
                    values["macro_f1" if m == primary else f"macro_f1_{m}"].append(macro_f1(pred, y, self.num_classes))
            values["adapt_seconds"].append(domain["adapt_seconds"])
            values["domain_id"].append(float(domain["domain"]))
        items = {n: torch.tensor(v, dtype=torch.float64, device=self.device) for n, v in values.items()}
        items["domain_id"] = items["domain_id"].unsqueeze(1)  # [n, 1]: kept in the records, not logged
        items["index"] = torch.tensor(domains, device=self.device)
        return items

    def summarise_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor]
                        ) -> list[dict[str, Any]]:
        """Mean +- 95% CI over target domains of every score, the worst domain's ``acc``; ``records[stage]`` rows:
        ``domain_index``, ``method`` (the primary one), the scores, ``adapt_seconds`` and ``domain_id``."""
        self.log_items(stage, index, values, ci=[n for n in values if n.startswith(("acc", "macro_f1"))],
                       count_name="domains", prog_bar=stage == "val")
        if self._trainer is not None and not self.trainer.sanity_checking:
            self.log_dict({f"{stage}/worst_acc": float(values["acc"].min())}, batch_size=len(index))
        primary = self._primary(stage)
        return [{"domain_index": r["domain_index"], "method": primary,
                 **{n: v for n, v in r.items() if n not in ("domain_index", "domain_id")},
                 "domain_id": int(r["domain_id"][0])} for r in self.item_rows(index, values)]

    @property
    def domain_records(self) -> dict[str, dict[str, Any]]:
        """Deprecated: :attr:`records` in the old column form (``{stage: {"method", "domain_index": [...], "acc":
        [...], ...}}``), kept for code written before the evaluation template; read ``records[stage]``."""
        warnings.warn("domain_records is deprecated; read records[stage]", DeprecationWarning, stacklevel=2)
        out = {}
        for stage, rows in self.records.items():
            if rows:
                columns = {n: [float(r[n]) for r in rows] for n in rows[0] if n not in ("domain_index", "method")}
                out[stage] = {"method": rows[0]["method"], "domain_index": [r["domain_index"] for r in rows],
                              **columns}
        return out
