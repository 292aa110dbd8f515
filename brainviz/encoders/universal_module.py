"""The Universal Brain Encoder network (report 004, section 3.2), in torch.

One network predicts the response of any voxel of any subject to any image;
the only subject-specific parameters are the per-voxel embeddings
(``embeddings[subject]``, shape (n_voxels, E)). Everything else is shared.

Shapes (B images, Nv voxels, L layers, P patches, C_in input channels,
C projected channels, H MLP hidden units, E embedding size)::

    x (B, L, P, C_in) --standardize, per-layer Linear C_in->C-->  F (B, L, P, C)      "values"
    keys  K[b,l,p] = Wk_l F[b,l,p] + pos[p]                        (B, L, P, E)
    query q_v      = Wq e_v + bq                                   (Nv, E)
    spatial attention a[v,b,l,:] = softmax_p(q_v . K[b,l,p] / sqrt(E))
    S[b,v,l]  = sum_p a[v,b,l,p] F[b,l,p]                          (B, Nv, L, C)
    M[b,v,l]  = MLP_l(S[b,v,l])  (2 layers, C->H->C, GELU)         (B, Nv, L, C)
    functional attention w_v = softmax(Kf e_v / sqrt(E))           (Nv, L*C),  Kf (L*C, E)
    y[b,v] = sum_{l,c} w_v[l,c] M[b,v,l,c] + bias                  (B, Nv)

Implementation note (exact, not an approximation): ``q . (Wk F + bk + pos)``
is computed as ``(Wk^T q) . F + q . pos`` (``q . bk`` is constant over
patches and cancels in the softmax, so the key bias is omitted), which costs
O(B Nv L P C) instead of O(B Nv L P E); and ``Wk^T q = (Wk^T Wq) e + Wk^T bq``
(likewise for ``pos``), so the E x E query is applied to the small key
matrices once per batch instead of to every voxel.

The forward pass splits into an image-independent part, :meth:`voxel_terms`
(``qk``, ``qpos`` and the functional weights ``w``: depend on the voxel
embeddings and shared weights only), and :meth:`forward_values` (everything
that touches the image). Serving caches the first per subject
(:meth:`UniversalEncoder.cache_voxel_terms`), so one live image costs only the second.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UniversalEncoderModule", "VoxelTerms", "ue_loss"]


class UniversalEncoderModule(nn.Module):
    """Voxel-image cross-attention encoder with per-subject voxel embeddings.

    Parameters
    ----------
    n_layers, n_patches, in_channels : L, P, C_in of the input features.
    proj_dim : C, channels after the per-layer projection.
    embed_dim : E, voxel embedding size (256 in the report).
    mlp_hidden : H, hidden units of each layer's MLP (default C).
    embed_init_std : standard deviation of new voxel embeddings.
    pos_init_std : standard deviation of the initial positional encodings.

    Parameters of the module (names used by tests and transfer)
    ------------------------------------------------------------
    proj_weight (L, C_in, C), proj_bias (L, C)        per-layer input projection
    key_weight (L, C, E)                              projected features -> key space
    pos_embed (P, E)                                  learned per-patch positional encoding
    query (Linear E->E)                               voxel embedding -> query
    mlp_w1 (L, C, H), mlp_b1 (L, H), mlp_w2 (L, H, C), mlp_b2 (L, C)
    feature_embed (L*C, E)                            functional-attention feature embeddings
    out_bias ()                                       shared output offset
    embeddings[subject] (V_subject, E)                per-voxel embeddings
    Buffers: in_mean, in_std (L, C_in) input standardization (set by the estimator).
    """

    def __init__(self, n_layers: int, n_patches: int, in_channels: int, proj_dim: int = 32,
                 embed_dim: int = 256, mlp_hidden: int | None = None, embed_init_std: float = 0.5,
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
        self.key_weight = uniform(L, C, E, fan_in=C)
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

    # ------------------------------------------------------------------ forward
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Standardize and project features: (B, L, P, C_in) -> values F (B, L, P, C)."""
        x = (x - self.in_mean[:, None, :]) / self.in_std[:, None, :]
        return torch.einsum("blpi,lic->blpc", x, self.proj_weight) + self.proj_bias[None, :, None, :]

    def forward(self, x: torch.Tensor, subject: str, voxels: torch.Tensor | None = None,
                return_attention: bool = False):
        """Predict responses.

        Parameters
        ----------
        x : (B, L, P, C_in) float32 raw (unstandardized) features.
        subject : whose voxel embeddings to use.
        voxels : (Nv,) int64 voxel indices of that subject (default: all voxels).
        return_attention : also return the spatial attention (B, Nv, L, P) and
            the functional weights (Nv, L*C).

        Returns
        -------
        y : (B, Nv) predicted responses.
        """
        emb = self.embeddings[subject]
        e = emb if voxels is None else emb.index_select(0, voxels)  # (Nv, E)
        return self.forward_embeddings(x, e, return_attention=return_attention)

    def forward_embeddings(self, x: torch.Tensor, e: torch.Tensor, return_attention: bool = False):
        """Same as :meth:`forward` with explicit voxel embeddings ``e`` (Nv, E)."""
        f = self.project(x)                                            # (B, L, P, C)
        return self.forward_values(f, self.voxel_terms(e), return_attention=return_attention)

    def voxel_terms(self, e: torch.Tensor) -> "VoxelTerms":
        """The image-independent part of the forward pass for voxels with embeddings ``e`` (Nv, E).

        Computed once per batch in training; at inference it can be kept per
        subject and reused for every image (:meth:`forward_values`).
        """
        scale = 1.0 / math.sqrt(self.embed_dim)
        L, C, Nv = self.n_layers, self.proj_dim, e.shape[0]
        # q = Wq e + bq; q . Wk f = e . (Wq^T Wk) f + bq . Wk f  (fold the E x E query into the keys)
        wq, bq = self.query.weight, self.query.bias                    # (E, E), (E,)
        kq = torch.einsum("lce,ef->lcf", self.key_weight, wq) * scale  # (L, C, E)
        kb = torch.einsum("lce,e->lc", self.key_weight, bq) * scale    # (L, C)
        qk = torch.einsum("ve,lce->lvc", e, kq) + kb[:, None, :]       # (L, Nv, C)
        qpos = e @ ((self.pos_embed @ wq) * scale).T + (self.pos_embed @ bq) * scale  # (Nv, P)
        w = torch.softmax((e @ self.feature_embed.T) * scale, dim=-1)  # (Nv, L*C)
        return VoxelTerms(qk, qpos, w.view(Nv, L, C).permute(1, 0, 2))  # w as (L, Nv, C)

    def forward_values(self, f: torch.Tensor, terms: "VoxelTerms", return_attention: bool = False):
        """Predict from projected features ``f`` (B, L, P, C) (:meth:`project`) and voxel terms.

        Returns y (B, Nv) (and with ``return_attention`` the spatial attention
        (B, Nv, L, P) and the functional weights (Nv, L*C)).
        """
        B, L, P, C = f.shape
        qk, qpos, w_l = terms
        Nv = qpos.shape[0]
        f_l = f.permute(1, 0, 2, 3)                                    # (L, B, P, C)
        logits = torch.bmm(qk, f_l.reshape(L, B * P, C).transpose(1, 2))  # (L, Nv, B*P)
        logits = logits.view(L, Nv, B, P) + qpos[None, :, None, :]
        attn = torch.softmax(logits, dim=-1)                           # (L, Nv, B, P)
        a2 = attn.permute(0, 2, 1, 3).reshape(L * B, Nv, P)
        s = torch.bmm(a2, f_l.reshape(L * B, P, C)).view(L, B * Nv, C)  # spatially attended
        h = F.gelu(torch.baddbmm(self.mlp_b1[:, None, :], s, self.mlp_w1))  # (L, B*Nv, H)
        m = torch.baddbmm(self.mlp_b2[:, None, :], h, self.mlp_w2)    # (L, B*Nv, C)
        y = (m.view(L, B, Nv, C) * w_l[:, None]).sum(dim=(0, 3)) + self.out_bias  # (B, Nv)
        if return_attention:
            return y, attn.permute(2, 1, 0, 3), w_l.permute(1, 0, 2).reshape(Nv, L * C)
        return y


class VoxelTerms(NamedTuple):
    """Image-independent terms of a set of Nv voxels (see :meth:`UniversalEncoderModule.voxel_terms`).

    qk (L, Nv, C): each voxel's query folded into each layer's key projection;
    qpos (Nv, P): query . positional encoding per patch; w (L, Nv, C): functional attention weights.
    """

    qk: torch.Tensor
    qpos: torch.Tensor
    w: torch.Tensor


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


def layer_channel_stats(chunks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per (layer, channel) over images and patches of (n, L, P, C) chunks."""
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
    mean = total / count
    var = (sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float(), std.float()
