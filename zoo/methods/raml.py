"""RAML: Retrieval-Augmented Meta Learning for low-resource text classification (Li et al., arXiv 2309.04979).

What the model computes, per episode (notation of the official code, ``Carolmelon/RAML`` ``src/model.py``, the
second ``Fewshot`` class, "average possibility"):

1. **Parametric part.** Each support text is encoded and mean-pooled; the K shots of a class are averaged into a
   prototype ``z_c`` (``zoo.methods.losses.prototypes``, Snell et al. eq. 1).
2. **Retrieval.** For each query ``q`` the top-P passages of an external corpus are retrieved with a frozen
   dense retriever and a FAISS index (``zoo.nn.retrieval``). Support texts get no passages, as in the code.
3. **Views.** Each (query, passage) pair is one string, ``"{query} title: {title} context: {text}"`` (the code's
   ``headline + " " + "title: {} context: {}"``), encoded by the *same* encoder into token states
   ``H_{q,p}`` with padding mask.
4. **Multi-view passages fusion.** The prototypes cross-attend over each view's tokens (ALBERT attention
   initialised from encoder layer 0, prototypes as attention queries):
   ``u_{c,q,p} = LayerNorm(z_c + W_o MHA(Q = z_c, K = V = H_{q,p}))`` ; score ``s_{c,q,p} = w^T u_{c,q,p} + b``.
5. **View averaging and loss.** ``s_{c,q} = (1/P) sum_p s_{c,q,p}``; cross-entropy over the N classes.

``fusion="fid"`` is the first (overridden) ``Fewshot`` of the official code: the P views of a query are
concatenated into one key/value sequence, Fusion-in-Decoder style, and scored once. ``n_passages=0`` is the
no-retrieval ablation (one view: the query alone), which isolates what retrieval adds to the same architecture.

**Two class scores** (``head``):

* ``head="published"``: steps 3-5 as above, ``s_{c,q} = (1/P) sum_p w^T u_{c,q,p} + b``. With a *frozen* encoder
  and a short CPU budget this score starts with no query-dependent signal (``u`` is dominated by the prototype,
  so every query gets the same class ranking) and must learn matching from nothing; the official code trains
  10,000 episodes and fine-tunes ALBERT.
* ``head="metric"`` (default, [INTERP]): the score starts from a metric and the fusion network learns a
  correction to it::

      e_x     = n(f(x)) + beta * (1/P) sum_p n(f(p_{x,p}))          # a text enriched by its passages
      z_c     = mean of e_s over the support items s of class c     # (enrich_support; else mean of f(s))
      s_{c,q} = exp(log_scale) * cos(z_c, e_q)                       # starts as cosine ProtoNet + passages
              + (1/P) sum_p w^T LayerNorm(z_c + W_o MHA(z_c, [n(f(q)); n(f(p_{q,p}))])) + b   # w, b start at 0

  with ``f`` the encoder (frozen MiniLM plus a trainable linear map that starts as the identity), ``n`` the L2
  normalisation, ``beta`` (``passage_weight``) and ``log_scale`` learned. Each view is the pair (query, passage)
  as two *pooled* vectors rather than their joint token states: with a frozen encoder every vector is computed
  once and cached (the passages' are read back from the FAISS index), so a training episode costs milliseconds
  and thousands of episodes fit a CPU budget. What is [INTERP] and why: the paper's score has no metric term; we
  add one because a metric-learning baseline scored this way (ProtoNet, cosine) is what the fusion network must
  beat, and a head that starts at chance spends its whole budget relearning it (issue 11's review found the
  shipped published-head 1-shot checkpoint putting ~80% of an episode's queries into one class). The enrichment
  by a mean of passage vectors is our reading of "multi-view passages fusion" at the level of sentence vectors.
  ``enrich_support`` (default true, [INTERP]) enriches the support items as the queries, so prototype and query
  live in the same space: with nothing trained, enriching the query alone never beat beta = 0 on WordNet, while
  enriching both did in 1-shot (``benchmarks/raml_passage_sweep.py``); ``false`` is the query-only reading.

``fusion="none"`` (metric head only) drops the fusion score: what is left is a cosine ProtoNet over each text enriched
by the mean of its passages' vectors, the simple retrieval baseline a practitioner would try first ("ProtoNet-text
over query + top-k passages, averaged"), with the same encoder, projection, passages and learned beta and scale.

``passage_source="gold"`` gives each text its gold passage (the datamodule's ``gold_passages()``: the knowledge-gap
WordNet benchmark's own-synset passage) P times instead of retrieving: the ceiling of what retrieval can add.

``passage_source="random"`` replaces the retrieved passages by passages drawn at random from the corpus (fixed per
query text), the ablation that shows whether *relevant* passages matter or only extra vectors do.

Departures from the official code, each a switch: the encoder is any Hugging Face model (ALBERT-base there,
MiniLM by default here); a validation split selects the checkpoint (the code evaluated on the test split while
training); the fusion block's learning rate is ``fusion_lr_scale`` times the encoder's (2 in the code).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from safefiles import data_root
from datamodules.episodes import Episode
from datamodules.text.passages import PassageCorpus, read_passages
from zoo.training.episodic import EpisodicModule
from zoo.methods.losses import prototypes, prototypical_logits
from zoo.nn.retrieval import IndexSpec, Retriever
from zoo.nn.text_encoder import TextEncoder

FUSIONS = ("multiview", "fid", "none")
HEADS = ("metric", "published")
PASSAGE_SOURCES = ("retrieved", "random", "gold")


class PrototypeCrossAttention(nn.Module):
    """``u = LayerNorm(z + Dropout(W_o MHA(W_q z, W_k H, W_v H)))``: prototypes attend over a text's tokens.

    The official ``AlbertCrossAttention``: ALBERT's self-attention with the prototypes as queries and a view's
    token states as keys and values, padding masked, attention-probability dropout, a residual connection to the
    prototype and a LayerNorm.

    Args:
        dim: prototype size (queries and output).
        kv_dim: token-state size (keys and values).
        n_heads: attention heads; ``dim`` must be divisible by it.
        dropout: on attention probabilities and on the projected output (0.1 in ALBERT).
    """

    def __init__(self, dim: int, kv_dim: int, n_heads: int, dropout: float = 0.1):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"PrototypeCrossAttention: dim {dim} is not divisible by n_heads {n_heads}")
        self.dim, self.n_heads, self.dropout_p = dim, n_heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(kv_dim, dim)
        self.value = nn.Linear(kv_dim, dim)
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def init_from_bert_attention(self, attention: nn.Module) -> bool:
        """Copy weights from a BERT-style attention block (``.self.query/key/value``, ``.output.dense/LayerNorm``),
        as the official code initialises from ALBERT layer 0. Returns False (nothing copied) on a shape mismatch."""
        try:
            pairs = [(self.query, attention.self.query), (self.key, attention.self.key),
                     (self.value, attention.self.value), (self.dense, attention.output.dense),
                     (self.norm, attention.output.LayerNorm)]
        except AttributeError:
            return False
        if any(a.weight.shape != b.weight.shape for a, b in pairs):
            return False
        with torch.no_grad():
            for a, b in pairs:
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
        return True

    def forward(self, protos: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``protos [B, N, dim]``, ``states [B, L, kv_dim]``, ``mask [B, L]`` (True = token) -> ``[B, N, dim]``."""
        b, n, _ = protos.shape
        h, dh = self.n_heads, self.dim // self.n_heads
        q = self.query(protos).view(b, n, h, dh).transpose(1, 2)
        k = self.key(states).view(b, -1, h, dh).transpose(1, 2)
        v = self.value(states).view(b, -1, h, dh).transpose(1, 2)
        attn_mask = mask.bool()[:, None, None, :]  # [B, 1, 1, L], broadcast over heads and prototypes
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout_p if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(b, n, self.dim)
        return self.norm(protos + self.dropout(self.dense(ctx)))


def average_view_scores(scores: torch.Tensor, n_query: int, n_views: int) -> torch.Tensor:
    """Per-view class scores ``[Q * P, N]`` (query-major) -> ``[Q, N]``: ``s_{c,q} = (1/P) sum_p s_{c,q,p}``."""
    if scores.shape[0] != n_query * n_views:
        raise ValueError(f"average_view_scores: {scores.shape[0]} rows for {n_query} queries x {n_views} views")
    return scores.view(n_query, n_views, -1).mean(1)


def build_views(queries: list[str], passage_ids: Any, corpus: PassageCorpus | None, template: str) -> list[str]:
    """One string per (query, passage), query-major: ``template.format(query=, title=, text=)``.

    With no passages (``passage_ids`` None) each query is its own single view.
    """
    if passage_ids is None:
        return list(queries)
    return [template.format(query=q, title=corpus.titles[int(j)], text=corpus.texts[int(j)])
            for q, row in zip(queries, passage_ids) for j in row]


class RAML(EpisodicModule):
    """Retrieval-augmented prototypical classifier with multi-view passage fusion (see the module docstring).

    Args:
        encoder: the text encoder for support texts and views (a :class:`zoo.nn.text_encoder.TextEncoder`).
        retriever_encoder: the frozen encoder that embeds queries and passages for retrieval. None: the
            ``encoder`` itself when it is frozen without a projection, else a frozen copy of its pretrained
            weights (the index must not go stale as the reader trains; RAML's retriever is fixed too).
        n_passages: P, passages per query (RAML's ``n_context``, 5); 0 disables retrieval.
        fusion: ``"multiview"`` (score each view, average), ``"fid"`` (concatenate the views, score once) or
            ``"none"`` (metric head only: no fusion score, the averaged-passages ProtoNet baseline).
        view_template: how a query and a passage make one view.
        view_max_length: token length of a view (RAML's ``text_maxlength``, 170).
        view_encoding: ``"joint"`` (RAML: the query and passage are one string through the encoder) or
            ``"separate"`` (each encoded alone, token states concatenated; passage states are computed once
            and cached with a frozen encoder, which makes CPU runs several times cheaper). Queries are then cut
            at the encoder's ``max_length`` and passages at ``view_max_length``.
        n_heads: cross-attention heads; None = the encoder's.
        dropout: of the cross-attention block.
        init_from_encoder_layer: copy the cross-attention weights from this encoder layer's attention (0 in
            RAML); None for a random initialisation.
        fusion_lr_scale: learning rate of the fusion block relative to the encoder's (2 in RAML).
        head: ``"metric"`` (default, [INTERP]: cosine to the passage-enriched query plus the fusion score, which
            starts at zero) or ``"published"`` (the fusion score alone, as the official code); see the module
            docstring.
        passage_weight: initial ``beta`` of the metric head, the weight of the mean passage vector added to the
            query's (learned).
        enrich_support: (metric head) enrich the support items with their passages too, so prototypes are means of
            enriched vectors (default; see the module docstring); ``false`` enriches the query only.
        scale: initial logit scale of the metric head's cosine (learned as ``log_scale``; 10 as ProtoNet-text).
        passage_source: ``"retrieved"`` (the top-P passages), ``"gold"`` (each text's gold passage from the
            datamodule's ``gold_passages()``, the ceiling) or ``"random"`` (P passages drawn at random from the
            corpus, the same ones for the same query text: the random-passages ablation).
        random_seed: seeds ``passage_source="random"``.
        proto_logit_weight: (``head="published"`` only) [INTERP, not in the official code] add this times the
            ProtoNet logits of each query (its pooled embedding against the prototypes,
            ``zoo.methods.losses.prototypical_logits``) to the fused scores.
            0 (default) is RAML as published. With a *frozen* encoder the published score ``w^T u`` starts with
            no query-dependent signal (``u`` is dominated by the prototype itself, so every query gets the same
            class ranking: chance accuracy) and must learn matching from scratch; with a positive weight the
            model starts as ProtoNet and the fusion block learns a retrieval-conditioned correction, its score
            head starting at zero.
        proto_distance: distance of those ProtoNet logits (``euclidean`` or ``cosine``).
        corpus_path: passage corpus (DPR TSV or JSON lines); None = the datamodule's ``passage_corpus()``.
        max_passages: use only the first passages of ``corpus_path``.
        index_kind / metric / hnsw_m / ef_construction / ef_search / ivf_nlist / ivf_nprobe: see
            :class:`zoo.nn.retrieval.IndexSpec`.
        index_dir: where the index persists; None (recommended) = ``<data root>/retrieval/<corpus>-<kind>-<key>``,
            the key a hash of the corpus checksum, retrieval encoder fingerprint and index settings
            (:func:`zoo.nn.retrieval.keyed_index_dir`; data root: ``$METAZOO_DATA`` or ``~/.cache/metazoo``).
        faiss_threads: FAISS threads; None = ``cpus // world_size``.
        optimizer / scheduler: as in :class:`zoo.training.episodic.EpisodicModule` (RAML: AdamW, lr 2e-5).
    """

    def __init__(self, encoder: nn.Module, retriever_encoder: nn.Module | None = None, n_passages: int = 5,
                 fusion: str = "multiview", view_template: str = "{query} title: {title} context: {text}",
                 view_max_length: int = 170, view_encoding: str = "joint", n_heads: int | None = None,
                 dropout: float = 0.1, init_from_encoder_layer: int | None = 0, fusion_lr_scale: float = 2.0,
                 head: str = "metric", passage_weight: float = 0.5, enrich_support: bool = True, scale: float = 10.0,
                 passage_source: str = "retrieved", random_seed: int = 0,
                 proto_logit_weight: float = 0.0, proto_distance: str = "euclidean",
                 corpus_path: str | None = None, max_passages: int | None = None, index_kind: str = "flat",
                 metric: str = "cosine", hnsw_m: int = 32, ef_construction: int = 200, ef_search: int = 128,
                 ivf_nlist: int | None = None, ivf_nprobe: int = 16, index_dir: str | None = None,
                 faiss_threads: int | None = None, optimizer: OptimizerCallable = torch.optim.AdamW,
                 scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        if fusion not in FUSIONS:
            raise ValueError(f"RAML fusion must be one of {FUSIONS}, got {fusion!r}")
        if view_encoding not in ("joint", "separate"):
            raise ValueError(f"RAML view_encoding must be 'joint' or 'separate', got {view_encoding!r}")
        if head not in HEADS:
            raise ValueError(f"RAML head must be one of {HEADS}, got {head!r}")
        if passage_source not in PASSAGE_SOURCES:
            raise ValueError(f"RAML passage_source must be one of {PASSAGE_SOURCES}, got {passage_source!r}")
        if not scale > 0:
            raise ValueError(f"RAML scale must be > 0, got {scale!r}")
        if fusion == "none" and head != "metric":
            raise ValueError("RAML fusion='none' leaves the published head no score; use it with head='metric'")
        if head == "metric" and proto_logit_weight:
            raise ValueError("RAML proto_logit_weight applies to head='published' only: the metric head already "
                             "starts from the cosine ProtoNet score")
        if n_passages < 0:
            raise ValueError(f"RAML n_passages must be >= 0, got {n_passages}")
        if not all(f in view_template for f in ("{query}", "{text}")):
            raise ValueError(f"RAML view_template must contain {{query}} and {{text}}, got {view_template!r}")
        for attr in ("out_dim", "hidden_dim", "token_states"):
            if not hasattr(encoder, attr):
                raise TypeError(f"RAML encoder must be a zoo.nn.text_encoder.TextEncoder (needs .{attr}), got "
                                f"{type(encoder).__name__}")
        self.save_config()
        self.spec = IndexSpec(index_kind, metric, hnsw_m, ef_construction, ef_search, ivf_nlist, ivf_nprobe)
        self.encoder = encoder
        if retriever_encoder is None and n_passages > 0:
            if getattr(encoder, "freeze", False) and getattr(encoder, "projection", None) is None:
                retriever_encoder = None  # the frozen encoder itself retrieves (no second copy in memory)
            else:
                retriever_encoder = TextEncoder(model_dir=encoder.model_dir, pooling=encoder.pooling,
                                                max_length=encoder.max_length, freeze=True)
        if retriever_encoder is not None and any(p.requires_grad for p in retriever_encoder.parameters()):
            raise ValueError("RAML retriever_encoder must be frozen (freeze: true, no projection_dim): the passage "
                             "index is built from its embeddings and would go stale as it trained")
        self.retriever_encoder = retriever_encoder
        self.n_passages, self.fusion, self.view_template = n_passages, fusion, view_template
        self.view_max_length, self.fusion_lr_scale = view_max_length, fusion_lr_scale
        self.view_encoding = view_encoding
        # the passage half of view_template, for view_encoding="separate"
        self.passage_template = view_template[view_template.index("{query}") + len("{query}"):].strip() or "{text}"
        self.corpus_path, self.max_passages, self.index_dir = corpus_path, max_passages, index_dir
        self.faiss_threads = faiss_threads
        config = getattr(getattr(encoder, "model", None), "config", None)
        heads = n_heads or int(getattr(config, "num_attention_heads", 1))
        self.head, self.passage_source, self.random_seed = head, passage_source, random_seed
        self.enrich_support = enrich_support
        # the metric head's views are pooled, projected vectors; the published head's are token states
        kv_dim = encoder.out_dim if head == "metric" else encoder.hidden_dim
        self.cross = PrototypeCrossAttention(encoder.out_dim, kv_dim, heads, dropout)
        self.initialised_from_encoder = False
        if init_from_encoder_layer is not None:
            layer = _bert_attention(encoder, init_from_encoder_layer)
            self.initialised_from_encoder = layer is not None and self.cross.init_from_bert_attention(layer)
        self.score = nn.Linear(encoder.out_dim, 1)
        if proto_distance not in ("euclidean", "cosine"):
            raise ValueError(f"RAML proto_distance must be 'euclidean' or 'cosine', got {proto_distance!r}")
        self.proto_logit_weight, self.proto_distance = proto_logit_weight, proto_distance
        if proto_logit_weight or head == "metric":
            nn.init.zeros_(self.score.weight)  # start exactly at the metric; the fusion learns a correction
            nn.init.zeros_(self.score.bias)
        if head == "metric":
            self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
            self.passage_weight = nn.Parameter(torch.tensor(float(passage_weight)))
        self.retriever: Retriever | None = None
        self._given_corpus: PassageCorpus | None = None
        self._gold: dict[str, int] | None = None  # text -> gold passage index (passage_source="gold")
        # wall time spent retrieving (query embedding + FAISS search), in training and in evaluation forwards
        self.timing = {"retrieval_s": 0.0, "train_retrieval_s": 0.0, "eval_retrieval_s": 0.0, "forward_s": 0.0,
                       "episodes": 0}

    # -- retrieval -----------------------------------------------------------------------------------------------
    def attach_retriever(self, retriever: Retriever) -> None:
        """Use an existing retriever (benchmarks share one, and its per-query cache, across runs)."""
        self.retriever = retriever

    def attach_corpus(self, corpus: PassageCorpus) -> None:
        """Use ``corpus`` for retrieval (outside a Trainer, where no datamodule provides one)."""
        self._given_corpus = corpus
        self.retriever = None

    def _corpus(self) -> PassageCorpus:
        if self._given_corpus is not None:
            return self._given_corpus
        if self.corpus_path is not None:
            return read_passages(self.corpus_path, self.max_passages)
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        corpus = dm.passage_corpus() if dm is not None and hasattr(dm, "passage_corpus") else None
        if corpus is None:
            raise ValueError("RAML needs a passage corpus: set model corpus_path, or use a datamodule whose "
                             "passage_corpus() returns one (e.g. datamodules.text.WordNetDataModule, or any "
                             "text datamodule with corpus_path)")
        return corpus if self.max_passages is None else corpus.head(self.max_passages)

    def attach_gold_passages(self, gold: dict[str, int]) -> None:
        """Text -> index of its gold passage in the corpus, for ``passage_source="gold"`` outside a Trainer."""
        self._gold = dict(gold)

    def setup(self, stage: str) -> None:
        if self.n_passages == 0 or self.retriever is not None:
            return
        if self.passage_source == "gold" and self._gold is None:
            dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
            if dm is None or not hasattr(dm, "gold_passages"):
                raise ValueError("RAML passage_source='gold' needs a datamodule with gold_passages() (the "
                                 "knowledge-gap WordNetDataModule, text: lemma) or attach_gold_passages()")
            self._gold = dm.gold_passages()
        corpus = self._corpus()
        world = self.trainer.world_size if self._trainer is not None else 1
        encoder = self.retriever_encoder if self.retriever_encoder is not None else self.encoder
        # no index_dir: one directory per (corpus, encoder, index settings) under the data root, so settings
        # whose corpora differ (a capped WordNet build keeps other passages) never rebuild over each other
        retriever = Retriever(encoder, corpus, self.spec, self.index_dir, world_size=world,
                              threads=self.faiss_threads, index_root=data_root() / "retrieval")
        if world > 1:  # one rank builds and persists; the others load what it wrote
            if self.trainer.is_global_zero:
                retriever.prepare()
            self.trainer.strategy.barrier("raml-index")
        retriever.prepare()
        self.retriever = retriever

    def retrieve(self, queries: list[str]) -> Any:
        """Top-P passage ids per query ``[Q, P]`` (None without retrieval); time spent is recorded."""
        if self.n_passages == 0:
            return None
        if self.retriever is None:
            self.setup("predict")
        start = time.perf_counter()
        if self.passage_source == "random":
            ids = random_passage_ids(queries, self.n_passages, len(self.retriever.corpus), self.random_seed)
        elif self.passage_source == "gold":
            missing = [t for t in queries if t not in self._gold]
            if missing:
                raise KeyError(f"RAML passage_source='gold': no gold passage for {len(missing)} text(s), e.g. "
                               f"{missing[0]!r}")
            ids = torch.tensor([[self._gold[t]] * self.n_passages for t in queries], dtype=torch.long)
        else:
            ids, _ = self.retriever.retrieve(queries, self.n_passages, vectors=self._cached_vectors(queries))
        spent = time.perf_counter() - start
        self.timing["retrieval_s"] += spent
        self.timing["train_retrieval_s" if self.training else "eval_retrieval_s"] += spent
        return ids

    def _cached_vectors(self, texts: list[str]) -> torch.Tensor | None:
        """The retrieval encoder's embeddings of ``texts`` from the frozen encoders' shared cache (None: let the
        retriever embed them). A frozen copy of the same weights shares the cache, so a text is encoded once."""
        enc = self.retriever.encoder
        if getattr(enc, "freeze", False) and getattr(enc, "projection", None) is None and hasattr(enc, "pooled"):
            return enc.pooled(texts)
        return None

    # -- the model -----------------------------------------------------------------------------------------------
    def forward(self, episode: Episode) -> torch.Tensor:
        """Query logits ``[num_query, n_way]`` of one text episode, each item read together with its retrieved
        passages: the ``metric`` head (:meth:`_metric_logits`) or the official ``published`` fusion score."""
        if self.head == "metric":
            return self._timed(self._metric_logits, episode)
        return self._timed(self._published_logits, episode)

    def _timed(self, fn: Any, episode: Episode) -> torch.Tensor:
        start = time.perf_counter()
        retrieval_before = self.timing["retrieval_s"]
        logits = fn(episode)
        self.timing["forward_s"] += time.perf_counter() - start
        self.timing["episodes"] += 1
        if self._trainer is not None and self.training:
            self.log("train/retrieval_ms", 1000 * (self.timing["retrieval_s"] - retrieval_before), on_step=True,
                     on_epoch=False, batch_size=1)
        return logits

    def _metric_logits(self, episode: Episode) -> torch.Tensor:
        """``head="metric"``: scaled cosine to the passage-enriched query plus the fusion correction."""
        support = self.encoder(list(episode.support_x))
        queries = list(episode.query_x)
        q = F.normalize(self.encoder(queries), dim=-1)  # [Q, d]
        ids = self.retrieve(queries)
        if ids is None:
            protos = prototypes(support, episode.support_y, episode.n_way)  # [N, d]
            enriched, views = q, q.unsqueeze(1)  # one view: the query alone
        else:
            p = self._passage_vectors(ids, q.device)  # [Q, P, d]
            enriched = q + self.passage_weight * p.mean(1)
            if self.enrich_support:
                sp = self._passage_vectors(self.retrieve(list(episode.support_x)), q.device)
                support = F.normalize(support, dim=-1) + self.passage_weight * sp.mean(1)
            protos = prototypes(support, episode.support_y, episode.n_way)  # [N, d]
            views = torch.stack([q.unsqueeze(1).expand_as(p), p], dim=2).flatten(0, 1)  # [Q*P, 2, d]
        metric = self.log_scale.exp() * (F.normalize(enriched, dim=-1) @ F.normalize(protos, dim=-1).T)
        if self.fusion == "none":
            return metric
        n_views = views.shape[0] // len(queries)
        mask = torch.ones(views.shape[:2], dtype=torch.bool, device=views.device)
        u = self.cross(protos.unsqueeze(0).expand(views.shape[0], -1, -1), views, mask)  # [Q*P, N, d]
        return metric + average_view_scores(self.score(u).squeeze(-1), len(queries), n_views)

    def _passage_vectors(self, ids: Any, device: torch.device) -> torch.Tensor:
        """``[n, P, d]`` normalised, projected vectors of the passages ``ids`` (stored in the index, frozen)."""
        stored = self.retriever.passage_vectors(ids).to(device)
        proj = self.encoder.projection
        return F.normalize(proj(stored) if proj is not None else stored, dim=-1)

    def _published_logits(self, episode: Episode) -> torch.Tensor:
        """``head="published"``: the official multi-view passages fusion score (steps 1-5 of the module docstring)."""
        n_way = episode.n_way
        support = self.encoder(list(episode.support_x))
        protos = prototypes(support, episode.support_y, n_way)  # [N, d]
        queries = list(episode.query_x)
        ids = self.retrieve(queries)
        n_views = max(1, self.n_passages)
        if ids is not None and self.view_encoding == "separate":
            states, mask = self._separate_views(queries, ids)
        else:
            views = build_views(queries, ids, self.retriever.corpus if ids is not None else None, self.view_template)
            states, mask = self.encoder.token_states(views, self.view_max_length)  # [Q*P, L, h]
        q = len(queries)
        if self.fusion == "fid" and n_views > 1:
            states = states.reshape(q, n_views * states.shape[1], states.shape[2])
            mask = mask.reshape(q, -1)
            u = self.cross(protos.unsqueeze(0).expand(q, -1, -1), states, mask)  # [Q, N, d]
            logits = self.score(u).squeeze(-1)
        else:
            u = self.cross(protos.unsqueeze(0).expand(q * n_views, -1, -1), states, mask)  # [Q*P, N, d]
            logits = average_view_scores(self.score(u).squeeze(-1), q, n_views)
        if self.proto_logit_weight:
            logits = logits + self.proto_logit_weight * prototypical_logits(self.encoder(queries), protos,
                                                                            self.proto_distance)
        return logits

    def _separate_views(self, queries: list[str], ids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Views as [query tokens ; passage tokens], each part encoded on its own (``view_encoding="separate"``).

        Cheaper than joint encoding (each passage's states are computed once and cached when the encoder is
        frozen) at the price of no token interaction between query and passage inside the encoder.
        """
        corpus = self.retriever.corpus
        unique = sorted({int(j) for row in ids for j in row})
        where = {j: i for i, j in enumerate(unique)}
        p_texts = [self.passage_template.format(title=corpus.titles[j], text=corpus.texts[j]) for j in unique]
        qs, qm = self.encoder.token_states(queries)
        ps, pm = self.encoder.token_states(p_texts, self.view_max_length)
        q_len, p_len = qm.sum(1).tolist(), pm.sum(1).tolist()
        pairs = [(qi, where[int(j)]) for qi, row in enumerate(ids) for j in row]
        longest = max(int(q_len[a] + p_len[b]) for a, b in pairs)
        states = qs.new_zeros(len(pairs), longest, qs.shape[-1])
        mask = torch.zeros(len(pairs), longest, dtype=torch.bool, device=qs.device)
        for v, (a, b) in enumerate(pairs):
            la, lb = int(q_len[a]), int(p_len[b])
            states[v, :la] = qs[a, :la]
            states[v, la: la + lb] = ps[b, :lb]
            mask[v, : la + lb] = True
        return states, mask

    # -- optimisation --------------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Two groups: the encoder at the optimiser's lr, the fusion block at ``fusion_lr_scale`` times it."""
        enc = [p for p in self.encoder.parameters() if p.requires_grad]
        head = [p for n, p in self.named_parameters()
                if p.requires_grad and not n.startswith(("encoder.", "retriever_encoder."))]
        return [{"params": enc, "lr_scale": 1.0}, {"params": head, "lr_scale": self.fusion_lr_scale}]


def random_passage_ids(texts: list[str], k: int, n_passages: int, seed: int = 0) -> torch.Tensor:
    """``[len(texts), k]`` passage ids drawn uniformly from ``range(n_passages)``, the same for the same text and
    seed in every process (seeded by a sha256 of the text, not Python's salted ``hash``)."""
    rows = []
    for t in texts:
        digest = hashlib.sha256(f"{seed}\x1f{t}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        rows.append(torch.randint(n_passages, (k,), generator=g))
    return torch.stack(rows) if rows else torch.zeros(0, k, dtype=torch.long)


def _bert_attention(encoder: nn.Module, layer: int) -> nn.Module | None:
    """Layer ``layer``'s attention block of a BERT-like Hugging Face encoder, or None."""
    model = getattr(encoder, "model", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None or not 0 <= layer < len(layers):
        return None
    return getattr(layers[layer], "attention", None)


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["RAML", "PrototypeCrossAttention", "average_view_scores", "build_views", "count_trainable",
           "random_passage_ids"]
