"""The Universal Brain Encoder network (report 004, section 3.2), in torch.

One network predicts the response of any voxel of any subject to any image;
the only subject-specific parameters are the per-voxel embeddings
(``embeddings[subject]``, shape (n_voxels, E)). Everything else is shared.

Shapes (B images, Nv voxels, L layers, P patches, C_in input channels (c_l of
them real in layer l, the rest zero padding), C projected channels, H MLP
hidden units, E embedding size)::

    x (B, L, P, C_in) --standardize-->  X (B, L, P, C_in)
    values    F[b,l,p] = Wv_l X[b,l,p] + bv_l                      (B, L, P, C)
    keys      K[b,l,p] = Wk_l X[b,l,p] + pos[p]                    (B, L, P, E)   Wk_l: C_in -> E, full rank
    query q_v      = Wq e_v + bq                                   (Nv, E)
    spatial attention a[b,v,l,:] = softmax_p(q_v . K[b,l,p] / sqrt(E))
    S[b,v,l]  = sum_p a[b,v,l,p] F[b,l,p]                          (B, Nv, L, C)
    M[b,v,l]  = MLP_l(S[b,v,l])  (2 layers, C->H->C, GELU)         (B, Nv, L, C)
    functional attention w_v = softmax(Kf e_v / sqrt(E))           (Nv, L*C),  Kf (L*C, E)
    y[b,v] = sum_{l,c} w_v[l,c] M[b,v,l,c] + bias                  (B, Nv)

Keys (report 004: "the input features projected to the embedding size E"): each
layer's standardized input features are projected straight to E by ``key_weight``
(L, C_in, E), so a layer's keys have rank min(c_l, E), not at most C as when keys
were made from the C projected values (checkpoint format 1; see
``brainviz.encoders.universal.CHECKPOINT_FORMAT``).

Implementation note (exact, not an approximation): the forward pass computes the
equations above in a cheaper order; the parameters and the function are the same.

* ``q . (Wk X + pos)`` is computed as ``q . (Wk X) + q . pos``, with only each
  layer's real channels ``layer_channels[l]`` (the zero padding of the feature
  cache contributes nothing after standardization). A layer with c_l <= E real
  channels folds the query into its key projection, ``(Wk^T q) . X`` with
  ``Wk^T q = (Wk^T Wq) e + Wk^T bq`` (P c_l per (image, voxel) pair); a layer
  with more (EfficientNet-Lite0's last stage: 320 > E = 256) folds ``Wq`` into
  its keys instead, ``e . (Wq^T Wk X) + bq . (Wk X)``, formed once per image
  (P E per pair, and no E x E query per voxel). The key bias is omitted
  (constant over patches, cancels in the softmax).
* The first MLP layer is folded into the values: the spatial attention sums to
  one over patches, so ``W1 S + b1 = sum_p a[p] (W1 F[p] + b1)``; each image's
  hidden pre-activations ``W1 (Wv X + bv) + b1`` (B, L, P, H) are formed once and
  attended (P H per pair, and no C x H matrix per pair).
* The second MLP layer is folded into the functional weights:
  ``sum_c w[c] (W2 h + b2)[c] = h . (W2^T w) + b2 . w``; per voxel
  ``u_l = W2_l^T w_l`` (H) and ``sum_l b2_l . w_l`` are image-independent
  (H per pair instead of H C + C).

Voxels may be shared by all images of a batch (``voxels`` (Nv,), prediction) or
sampled separately for each image (``voxels`` (B, Nv), training as in report 004:
"for each image we randomly sample 5000 voxel indices"); then the voxel terms
are computed once for the batch's distinct voxels and gathered per image.

The forward pass splits into an image-independent part, :meth:`voxel_terms`
(``qk``, ``qpos``, the functional weights ``w`` and their fold with the MLP's
output layer: depend on the voxel embeddings and shared weights only), and :meth:`forward_values` (everything
that touches the image). Serving caches the first per subject
(:meth:`UniversalEncoder.cache_voxel_terms`), so one live image costs only the second.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UniversalEncoderModule", "VoxelTerms", "ProjectedImages", "ue_loss"]


class UniversalEncoderModule(nn.Module):
    """Voxel-image cross-attention encoder with per-subject voxel embeddings.

    Parameters
    ----------
    n_layers, n_patches, in_channels : L, P, C_in of the input features.
    proj_dim : C, channels of the values after the per-layer projection.
    embed_dim : E, voxel embedding size (256 in the report).
    mlp_hidden : H, hidden units of each layer's MLP (default C).
    embed_init_std : standard deviation of new voxel embeddings.
    pos_init_std : standard deviation of the initial positional encodings.

    Parameters of the module (names used by tests and transfer)
    ------------------------------------------------------------
    proj_weight (L, C_in, C), proj_bias (L, C)        per-layer value projection
    key_weight (L, C_in, E)                           standardized input features -> key space (full rank)
    pos_embed (P, E)                                  learned per-patch positional encoding
    query (Linear E->E)                               voxel embedding -> query
    mlp_w1 (L, C, H), mlp_b1 (L, H), mlp_w2 (L, H, C), mlp_b2 (L, C)
    feature_embed (L*C, E)                            functional-attention feature embeddings
    out_bias ()                                       shared output offset
    embeddings[subject] (V_subject, E)                per-voxel embeddings
    Buffers: in_mean, in_std (L, C_in) input standardization and layer_channels (L,)
    real channels per layer (set by the estimator; default C_in).
    """

    def __init__(self, n_layers: int, n_patches: int, in_channels: int, proj_dim: int = 32,
                 embed_dim: int = 256, mlp_hidden: int | None = None, embed_init_std: float = 0.01,
                 pos_init_std: float = 1.0):
        super().__init__()
        L, P, Cin, C, E = n_layers, n_patches, in_channels, proj_dim, embed_dim
        H = mlp_hidden or proj_dim
        self.n_layers, self.n_patches, self.in_channels = L, P, Cin
        self.proj_dim, self.embed_dim, self.mlp_hidden = C, E, H
        self.embed_init_std = float(embed_init_std)

        def uniform(*shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.proj_weight = uniform(L, Cin, C, fan_in=Cin)
        self.proj_bias = nn.Parameter(torch.zeros(L, C))
        self.key_weight = uniform(L, Cin, E, fan_in=Cin)
        self.pos_embed = nn.Parameter(torch.randn(P, E) * pos_init_std)
        self.query = nn.Linear(E, E)
        self.mlp_w1 = uniform(L, C, H, fan_in=C)
        self.mlp_b1 = nn.Parameter(torch.zeros(L, H))
        self.mlp_w2 = uniform(L, H, C, fan_in=H)
        self.mlp_b2 = nn.Parameter(torch.zeros(L, C))
        self.feature_embed = nn.Parameter(torch.randn(L * C, E))
        self.out_bias = nn.Parameter(torch.zeros(()))
        self.embeddings = nn.ParameterDict()
        self.register_buffer("in_mean", torch.zeros(L, Cin))
        self.register_buffer("in_std", torch.ones(L, Cin))
        self.register_buffer("layer_channels", torch.full((L,), Cin, dtype=torch.long))

    # ------------------------------------------------------------------ subjects
    def add_subject(self, name: str, n_voxels: int, generator: torch.Generator | None = None) -> None:
        """Create the (n_voxels, E) embedding of a new subject, N(0, embed_init_std**2)."""
        if name in self.embeddings:
            raise KeyError(f"subject {name!r} already exists")
        w = torch.randn(n_voxels, self.embed_dim, generator=generator) * self.embed_init_std
        self.embeddings[name] = nn.Parameter(w.to(self.in_mean.device))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the voxel embeddings."""
        return [p for n, p in self.named_parameters() if not n.startswith("embeddings.")]

    def _channels(self) -> list[int]:
        return [int(c) for c in self.layer_channels.tolist()]

    def folded_layers(self) -> list[bool]:
        """Per layer: is the query folded into the key projection (c_l <= E; see the module docstring)?"""
        return [c <= self.embed_dim for c in self._channels()]

    def voxel_terms_width(self) -> int:
        """Floats per voxel in :class:`VoxelTerms`: the real channels c_l of the folded layers, E for
        the embedding when a layer is not folded, P positional terms, L x C functional weights,
        L x H output weights and one output offset."""
        folded = self.folded_layers()
        qk = sum(c for c, f in zip(self._channels(), folded) if f) + (0 if all(folded) else self.embed_dim)
        return qk + self.n_patches + self.n_layers * (self.proj_dim + self.mlp_hidden) + 1

    # ------------------------------------------------------------------ forward
    def project(self, x: torch.Tensor) -> "ProjectedImages":
        """Standardize features x (B, L, P, C_in) -> :class:`ProjectedImages`: the standardized real
        channels (keys of the folded layers), the MLP's hidden pre-activations of every patch
        ``W1 (Wv X + bv) + b1`` (B, L, P, H), and for each layer that is not folded its keys with
        the query weights folded in, ``(Wk X) Wq / sqrt(E)`` (B, P, E), and ``(Wk X) . bq / sqrt(E)`` (B, P)."""
        scale = 1.0 / math.sqrt(self.embed_dim)
        xs = (x - self.in_mean[:, None, :]) / self.in_std[:, None, :]
        w_in = torch.matmul(self.proj_weight, self.mlp_w1)                             # (L, C_in, H)
        b_in = torch.matmul(self.proj_bias.unsqueeze(1), self.mlp_w1).squeeze(1) + self.mlp_b1  # (L, H)
        hidden = torch.einsum("blpi,lih->blph", xs, w_in) + b_in[None, :, None, :]
        inputs = tuple(xs[:, l, :, :c] for l, c in enumerate(self._channels()))
        keys, key_bias = [], []
        for l, fold in enumerate(self.folded_layers()):
            if fold:
                keys.append(None)
                key_bias.append(None)
                continue
            k = inputs[l] @ self.key_weight[l, :inputs[l].shape[-1]]                     # (B, P, E)
            keys.append((k @ self.query.weight) * scale)
            key_bias.append((k @ self.query.bias) * scale)
        return ProjectedImages(inputs, hidden, tuple(keys), tuple(key_bias))

    def forward(self, x: torch.Tensor, subject: str, voxels: torch.Tensor | None = None,
                return_attention: bool = False):
        """Predict responses.

        Parameters
        ----------
        x : (B, L, P, C_in) float32 raw (unstandardized) features.
        subject : whose voxel embeddings to use.
        voxels : (Nv,) int64 voxel indices of that subject shared by every image, or (B, Nv)
            separate indices for each image (default: all voxels).
        return_attention : also return the spatial attention (B, Nv, L, P) and (shared voxels
            only, else None) the functional weights (Nv, L*C).

        Returns
        -------
        y : (B, Nv) predicted responses (y[b, j] is voxel ``voxels[b, j]`` for per-image voxels).
        """
        emb = self.embeddings[subject]
        if voxels is not None and voxels.dim() == 2:
            return self._forward_per_image(x, emb, voxels, return_attention)
        e = emb if voxels is None else emb.index_select(0, voxels)  # (Nv, E)
        return self.forward_embeddings(x, e, return_attention=return_attention)

    def _forward_per_image(self, x: torch.Tensor, emb: torch.Tensor, voxels: torch.Tensor, return_attention: bool):
        """Per-image voxels (B, Nv): images with the same voxel row form one block, whose voxel
        terms are computed once (the training schedule deals each step's images disjoint groups
        of one random voxel permutation, so a step computes every voxel's terms at most once)."""
        groups, assign = torch.unique(voxels, dim=0, return_inverse=True)  # (G, Nv), (B,)
        proj = self.project(x)
        n = groups.shape[1]
        # group g: rows g*n .. (g+1)*n, split once (the backward of one split is one concatenation;
        # slicing each group would add a zero-filled full-size gradient per group and tensor)
        terms = self.voxel_terms(emb.index_select(0, groups.reshape(-1))).split(n)
        # outputs in the input's precision (at least float32): under autocast (bf16 / fp16) each group's
        # output is in the low-precision dtype, and an index put needs equal dtypes (the gradient flows
        # back through the cast)
        dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        y = x.new_empty(voxels.shape, dtype=dt)
        attn = x.new_empty((*voxels.shape, self.n_layers, self.n_patches), dtype=dt) if return_attention else None
        for g in range(groups.shape[0]):
            sel = (assign == g).nonzero().squeeze(1)
            out = self.forward_values(proj.select(sel), terms[g],
                                      return_attention=return_attention)
            if return_attention:
                y[sel], attn[sel] = out[0].to(dt), out[1].to(dt)
            else:
                y[sel] = out.to(dt)
        return (y, attn, None) if return_attention else y

    def forward_embeddings(self, x: torch.Tensor, e: torch.Tensor, return_attention: bool = False):
        """Same as :meth:`forward` with explicit voxel embeddings ``e`` (Nv, E) shared by every image."""
        return self.forward_values(self.project(x), self.voxel_terms(e), return_attention=return_attention)

    def voxel_terms(self, e: torch.Tensor) -> "VoxelTerms":
        """The image-independent part of the forward pass for voxels with embeddings ``e`` (Nv, E).

        Computed once per batch in training; at inference it can be kept per
        subject and reused for every image (:meth:`forward_values`).
        """
        scale = 1.0 / math.sqrt(self.embed_dim)
        L, C, Nv = self.n_layers, self.proj_dim, e.shape[0]
        # q = Wq e + bq; q . Wk^T x = e . (Wq^T Wk^T) x + bq . Wk^T x  (fold the E x E query into the keys)
        wq, bq = self.query.weight, self.query.bias                    # (E, E), (E,)
        folded = self.folded_layers()
        qk = []
        for l, c in enumerate(self._channels()):
            wk = self.key_weight[l, :c]                                # (c_l, E)
            qk.append(e @ (wk @ wq).T * scale + (wk @ bq) * scale if folded[l] else None)  # (Nv, c_l)
        q = None if all(folded) else e                                 # (Nv, E) against Wq-folded keys
        qpos = e @ ((self.pos_embed @ wq) * scale).T + (self.pos_embed @ bq) * scale  # (Nv, P)
        w = torch.softmax((e @ self.feature_embed.T) * scale, dim=-1).view(Nv, L, C).permute(1, 0, 2)  # (L, Nv, C)
        u = torch.bmm(w, self.mlp_w2.transpose(1, 2))                  # (L, Nv, H) = W2_l^T w_l
        offset = torch.einsum("lnc,lc->n", w, self.mlp_b2)             # (Nv,) sum_l b2_l . w_l
        return VoxelTerms(tuple(qk), qpos, w, q, u, offset)

    def forward_values(self, proj: "ProjectedImages", terms: "VoxelTerms", index: torch.Tensor | None = None,
                       return_attention: bool = False):
        """Predict from projected images (:meth:`project`) and voxel terms.

        ``index`` None: every image sees every voxel of ``terms`` -> y (B, Nv). ``index`` (B, Nv):
        image b sees the voxels ``index[b]`` (rows of ``terms``) -> y (B, Nv). With
        ``return_attention`` also the spatial attention (B, Nv, L, P) and the functional
        weights (Nv, L*C) (None with ``index``).
        """
        xs, hidden, keys, key_bias = proj
        qk, qpos, w_l, q, u, offset = terms
        if index is not None:
            flat = index.reshape(-1)
            B_, Nv_ = index.shape

            def gather(t: torch.Tensor) -> torch.Tensor:  # rows of t for each (image, voxel): (B, Nv, ...)
                return t.index_select(0, flat).view(B_, Nv_, *t.shape[1:])

            qpos, offset = gather(qpos), gather(offset)                # (B, Nv, P), (B, Nv)
        y = self.out_bias + offset
        attns = []
        for l in range(self.n_layers):
            bias = qpos
            if qk[l] is not None:  # folded: (Nv, c_l) against the inputs (B, c_l, P)
                ql, kl = qk[l], xs[l].transpose(1, 2)
            else:                  # embedding (Nv, E) against the Wq-folded keys (B, E, P)
                ql, kl = q, keys[l].transpose(1, 2)
                bias = qpos + key_bias[l].unsqueeze(1)                 # (B, Nv, P)
            if index is None:
                logits = torch.matmul(ql, kl) + bias                   # (B, Nv, P)
            else:
                logits = torch.baddbmm(bias, gather(ql), kl)           # (B, Nv, P)
            attn = torch.softmax(logits, dim=-1)
            h = F.gelu(torch.bmm(attn, hidden[:, l]))                  # (B, Nv, H) MLP hidden units
            ul = u[l] if index is None else gather(u[l])               # (Nv, H) or (B, Nv, H)
            y = y + (h * ul).sum(-1)
            if return_attention:
                attns.append(attn)
        if return_attention:
            Nv = qpos.shape[-2]
            w = None if index is not None else w_l.permute(1, 0, 2).reshape(Nv, -1)
            return y, torch.stack(attns, dim=2), w
        return y


class ProjectedImages(NamedTuple):
    """Image side of the forward pass (:meth:`UniversalEncoderModule.project`).

    inputs: L tensors (B, P, c_l), the standardized real input channels (keys of the folded layers);
    hidden: (B, L, P, H) each patch's MLP pre-activations ``W1 (Wv X + bv) + b1``; keys: L entries,
    (B, P, E) keys ``(Wk X) Wq / sqrt(E)`` of each layer that is not folded, else None; key_bias:
    L entries, (B, P) ``(Wk X) . bq / sqrt(E)`` of those layers, else None.
    """

    inputs: tuple
    hidden: torch.Tensor
    keys: tuple
    key_bias: tuple

    def select(self, rows: torch.Tensor) -> "ProjectedImages":
        """The images ``rows`` (indices into B)."""
        def sel(t):
            return None if t is None else t.index_select(0, rows)
        return ProjectedImages(tuple(sel(t) for t in self.inputs), sel(self.hidden),
                               tuple(sel(t) for t in self.keys), tuple(sel(t) for t in self.key_bias))


class VoxelTerms(NamedTuple):
    """Image-independent terms of a set of Nv voxels (see :meth:`UniversalEncoderModule.voxel_terms`).

    qk: L entries, (Nv, c_l) each voxel's query folded into the layer's key projection, or None for
    a layer that is not folded; qpos (Nv, P): query . positional encoding per patch; w (L, Nv, C):
    functional attention weights; q (Nv, E): the embeddings, against the Wq-folded keys of the layers
    that are not folded (None when every layer is folded); u (L, Nv, H): ``W2_l^T w_l``, the output
    weights of each layer's hidden units; offset (Nv,): ``sum_l b2_l . w_l``.
    """

    qk: tuple
    qpos: torch.Tensor
    w: torch.Tensor
    q: torch.Tensor | None
    u: torch.Tensor
    offset: torch.Tensor

    def split(self, n: int) -> list["VoxelTerms"]:
        """The terms of voxels 0 .. n-1, n .. 2n-1, ... (views; one ``torch.split`` per tensor)."""
        def parts(t, dim=0):
            return [None] * math.ceil(self.qpos.shape[0] / n) if t is None else torch.split(t, n, dim=dim)
        cols = [parts(t) for t in self.qk] + [parts(self.qpos), parts(self.w, 1), parts(self.q), parts(self.u, 1),
                                              parts(self.offset)]
        return [VoxelTerms(tuple(c[:len(self.qk)]), *c[len(self.qk):]) for c in zip(*cols)]


def ue_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Affine combination of MSE and cosine proximity (report 004 eq. 1).

    ``alpha * mean((pred - target)**2) + (1 - alpha) * mean_b(1 - cos(pred[b], target[b]))``
    where the cosine is taken across the sampled voxels of each image.

    Parameters
    ----------
    pred, target : (B, Nv) predicted and measured responses.
    alpha : weight of the MSE term, in [0, 1].
    """
    mse = torch.mean((pred - target) ** 2)
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return alpha * mse + (1.0 - alpha) * torch.mean(1.0 - cos)


def layer_channel_sums(chunks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(sum (L, C), sum of squares (L, C), count) in float64 over images and patches of (n, L, P, C) chunks:
    the additive part of :func:`layer_channel_stats` (ranks of a distributed job add theirs up)."""
    total = None
    sq = None
    count = 0
    for x in chunks:
        x = x.double()
        s = x.sum(dim=(0, 2))
        s2 = (x * x).sum(dim=(0, 2))
        total = s if total is None else total + s
        sq = s2 if sq is None else sq + s2
        count += x.shape[0] * x.shape[2]
    return total, sq, count


def channel_stats_from_sums(total: torch.Tensor, sq: torch.Tensor, count: int
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (L, C), std (L, C) and real channels per layer (L,) from :func:`layer_channel_sums`."""
    mean = total / count
    var = (sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    varies = std > 1e-6
    idx = torch.arange(1, std.shape[1] + 1)
    active = torch.clamp((varies * idx).max(dim=1).values, min=1).long()
    std = torch.where(varies, std, torch.ones_like(std))
    return mean.float(), std.float(), active


def layer_channel_stats(chunks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (L, C) and std (L, C) per (layer, channel) over images and patches of (n, L, P, C) chunks,
    and the real channels per layer (L,) (1 + the last channel that varies; the rest is padding)."""
    return channel_stats_from_sums(*layer_channel_sums(chunks))
