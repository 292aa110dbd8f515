"""The REAL 92-image human-IT analysis (Kriegeskorte et al. 2008): :class:`K92Result` (the images, their
pictures, tags and pooled features; RSA of every backbone block, the pooled encoder layers and the reference
models; the cross-validated layer mix; every model's RDM) and the pair model's rows on the 92 images.

:func:`run` yields the result and returns the headline numbers; :mod:`brainviz.pipeline.store_results` writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from ... import rsa as rdmlib
from ...errors import BrainVizDataError
from ...pairs import run_pair_experiment
from ...paths import KRIEGESKORTE92, resolve_data_root
from ...rsa import fit_layer_mix, layer_sweep
from ...thumbnails import Thumbnail, thumbnail
from ..context import Context
from ..settings import AnalysisSettings
from .pair_model import pair_rows
from .rdms import RDMResult


@dataclass(frozen=True)
class K92Result:
    """The 92-image set's results.

    * ``image_keys`` (92,) 'k92-00001' ..., ``thumbnails`` (92,) their pictures, ``scores`` (92, c) category
      scores indexed by image key, ``tags`` {image_key: category}.
    * ``backbone`` and ``pooled`` (92, D) float32: the images' pooled features.
    * ``rsa``: model, method, value, p_value, nc_lower, nc_upper, rsa_sem, rsa_mean, per_subject, family, depth,
      rdm_id (each model RDM vs the human-IT RDMs, table ``k92_rsa``).
    * ``fit``: model, method, value, value_sem, nc_lower, nc_upper, n_folds, weights (the cross-validated layer
      mix, table ``k92_fit``).
    * ``rdms``: the human-IT mean RDM and every model's RDM (:class:`~brainviz.pipeline.analyses.rdms.RDMResult`).
    """

    image_keys: list[str]
    thumbnails: list[Thumbnail]
    scores: pd.DataFrame
    tags: dict[str, str]
    backbone: str
    pooled: np.ndarray
    rsa: pd.DataFrame
    fit: pd.DataFrame
    rdms: tuple[RDMResult, ...]


def run(ctx: Context, settings: AnalysisSettings) -> Iterator[K92Result]:
    """The REAL 92-image human-IT analysis: RSA of EVERY backbone block (full resolution, 1 - Pearson),
    the 7x7-pooled encoder layers and the reference models, with Kendall tau-a and Spearman (per-subject
    mean, SEM, vs the subject-mean RDM, permutation p, Nili ceiling of the same statistic), and the
    cross-validated weighted mix of blocks scored on held-out images x subjects. Returns the headline numbers,
    with the pair model's rows on the 92 images under ``"_pair_rows"`` (:mod:`.pair_model`); {} without the
    92-image set (listed by :func:`brainviz.pipeline.plan.skipped_analyses`)."""
    from ...data.kriegeskorte92 import load_kriegeskorte92
    from ...features import extract_features, get_backbone
    from ...features.blocks import extract_blocks
    from ...rsa import block_rdms

    try:
        present = (resolve_data_root(ctx.config.data_root) / KRIEGESKORTE92).is_dir()
    except BrainVizDataError:
        present = False
    if not present:
        return {}
    with ctx.timed("k92"):
        k92 = load_kriegeskorte92(ctx.config.data_root)
        thumbs = [thumbnail(arr, name=key) for key, arr in zip(k92.image_keys, k92.images)]
        backbone = get_backbone(ctx.config.backbone, weights=ctx.config.weights, seed=ctx.config.seed)
        ims = k92.pil_images()
        fs = extract_features(backbone, ims, progress=ctx.config.progress)
        acts = extract_blocks(backbone, ims, progress=ctx.config.progress, keys=k92.image_keys)
        blocks = block_rdms(acts, metric="correlation")
        del acts
        bb = ctx.config.backbone
        models = {f"{bb} {n}": r for n, r in blocks.items()}
        family = {f"{bb} {n}": "block" for n in blocks}
        depth = {f"{bb} {n}": float(i / max(1, len(blocks) - 1)) for i, n in enumerate(blocks)}
        grid = "x".join(str(int(g)) for g in fs.grid)  # the encoder layers' patch grid (7x7; DINOv2: 8x8)
        stages = {f"{bb} {n} ({grid} pooled)": r for n, r in rdmlib.feature_rdms(fs, metric="correlation",
                                                                                include_pooled=False).items()}
        models.update(stages)
        family.update({n: f"stage ({grid} pooled)" for n in stages})
        refs = {f"reference: {n}": r for n, r in k92.models.items()}
        models.update(refs)
        family.update({n: "reference" for n in refs})
        table = layer_sweep(models, k92.human_it, subjects=k92.human_it_subjects,
                            methods=("kendall_tau_a", "spearman"), depth=depth,
                            n_perm=ctx.config.n_perm, seed=ctx.config.seed, n_jobs=ctx.workers())
        table["family"] = [family[m] for m in table.model]
        table["rdm_id"] = [f"k92|{m}" for m in table.model]
        out = table.rename(columns={"rsa": "value", "per_unit": "per_subject"})
        keys = k92.image_keys
        rdms = [RDMResult("k92|human-IT mean", keys, _human_mean(k92), "correlation", "k92:human-IT", roi="IT")]
        rdms += [RDMResult(f"k92|{name}", keys, r, "correlation", f"k92:{name}") for name, r in models.items()]
        # cross-validated mix of blocks (and blocks + the two categorical reference models)
        subj_rdms, _ = k92.human_it_subject_mean()
        block_only = {n: r for n, r in blocks.items()}
        fit_rows = []
        for method in ("kendall_tau_a", "spearman"):
            res = fit_layer_mix(block_only, subj_rdms, method=method, n_repeats=settings.layer_mix_repeats,
                                seed=ctx.config.seed)
            sm = res.summary.copy()
            sm["weights"] = [res.weights.round(4).to_dict() if m.startswith("mix") else None for m in sm.model]
            fit_rows.append(sm)
            cats = {**block_only, **{n: k92.models[n] for n in ("animacy", "FaceBodyManmadeNatobj") if n in k92.models}}
            res2 = fit_layer_mix(cats, subj_rdms, method=method, n_repeats=settings.layer_mix_repeats,
                                 seed=ctx.config.seed)
            mix2 = res2.summary[res2.summary.model == "mix of all layers (fitted)"].copy()
            mix2["model"] = "mix of all layers + animacy + face/body/object models (fitted)"
            mix2["weights"] = [res2.weights.round(4).to_dict()]
            fit_rows.append(mix2)
        fit = pd.concat(fit_rows, ignore_index=True)
        pair = run_pair_experiment(np.asarray(fs.pooled, np.float64), _human_mean(k92),
                                   test_fraction=settings.pair_test_fraction, seed=ctx.config.seed)
        yield K92Result(
            image_keys=list(keys), thumbnails=thumbs, scores=_k92_scores(k92),
            tags=dict(zip(keys, k92.categories["category"].astype(str))), backbone=bb,
            pooled=np.asarray(fs.pooled, np.float32),
            rsa=out[["model", "method", "value", "p_value", "nc_lower", "nc_upper", "rsa_sem", "rsa_mean",
                     "per_subject", "family", "depth", "rdm_id"]],
            fit=fit[["model", "method", "value", "value_sem", "nc_lower", "nc_upper", "n_folds", "weights"]],
            rdms=tuple(rdms))
    tau = table[(table.method == "kendall_tau_a") & (table.family == "block")].sort_values("rsa", ascending=False)
    best = tau.iloc[0]
    mix = fit[(fit.method == "kendall_tau_a") & (fit.model == "mix of all layers (fitted)")].iloc[0]
    return {"k92_noise_ceiling": [round(float(best.nc_lower), 3), round(float(best.nc_upper), 3)],
            "k92_best": {"model": best.model, "tau_a": round(float(best.rsa), 3)},
            "k92_mix_heldout_tau_a": {"value": round(float(mix.value), 3), "nc_lower": round(float(mix.nc_lower), 3)},
            "pair_model_k92": {k: round(float(v), 3) for k, v in pair.items() if isinstance(v, float)},
            "_pair_rows": pair_rows("k92 human IT (real)", pair)}


def _k92_scores(k92) -> pd.DataFrame:
    """Category scores of the 92 images from their category flags (faces, bodies, animals, people)."""
    c = k92.categories
    flag = lambda col: c[col].astype(float).to_numpy() if col in c else np.full(len(c), np.nan)  # noqa: E731
    return pd.DataFrame({"faces": flag("face"), "bodies": flag("body"),
                         "animals": (flag("animate") * (1 - flag("human"))) if "human" in c else flag("animate"),
                         "people": flag("human")}, index=k92.image_keys)


def _human_mean(k92) -> np.ndarray:
    """(92, 92) mean over the 4 subjects of their session-averaged human-IT RDMs."""
    return k92.human_it_subject_mean()[0].mean(axis=0)
