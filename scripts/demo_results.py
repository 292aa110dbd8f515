"""Regenerate the README "Results on the demo brain" target table (issue 10) from stores.

One command builds the demo brain for each seed, runs ``precompute all`` (timed), and prints
the table of every target, measured on every seed::

    python scripts/demo_results.py --build --seeds 0 7          # ~2 x 15 min on an idle 2-core machine

or, from stores that already exist::

    python scripts/demo_results.py --store 0=data/A_s0.duckdb --store 7=data/A_s7.duckdb

Everything read here comes from the store (``cluster_settings``, ``cluster_variants``, ``cluster_quality``,
``roi_metrics``, ``retrieval``, ``transfer_curve``, ``models``). The recovery rows are
SIMULATION CHECKS against the demo brain's planted regions. The "references" are yardsticks for the
ARI targets, not methods: the same clustering of the same vertices on the demo brain's noise-free
simulated responses (its ground truth: what is reachable without noise or encoder), on the test predictions
of ridge fitted to the noise-free TRAINING responses (what a linear read-out of the backbone's features
allows at best), on the measured, noisy test responses (what the data hold without an encoder) and on the
ridge encoders' predicted test responses (what a linear read-out of the same features holds), scored by
``precompute`` at the chosen k (stores written before those rows existed show nan).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brainviz.pipeline.analyses.clusters import REFERENCE_SOURCES  # noqa: E402
from brainviz.store.reader import Store  # noqa: E402

CATEGORIES = ("faces", "bodies", "food", "words", "places-indoor", "places-outdoor")
PER_SUBJECT_TARGET = {"subj01": 0.75, "subj02": 0.75, "subj03": 0.75, "subj04": 0.75}
#: issue 27: the default view's category-region ARI and coverage at the chosen k
JOINT_TARGET, COVERAGE_TARGET = 0.85, 0.60


def build(seed: int, out: Path) -> tuple[Path, float]:
    """demo-brain + precompute all for one seed; returns (store, minutes of `precompute all`)."""
    demo, store, work = out / f"demo_s{seed}", out / f"s{seed}.duckdb", out / f"work_s{seed}"
    subprocess.run([sys.executable, "-m", "precompute", "demo-brain", "--out", str(demo), "--seed", str(seed)],
                   cwd=ROOT, check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "precompute", "all", "--dataset", str(demo), "--store", str(store),
                    "--work-dir", str(work), "--seed", str(seed)], cwd=ROOT, check=True)
    return store, (time.perf_counter() - t0) / 60


def _quality(st: Store, scope: str) -> tuple[int | None, pd.DataFrame]:
    settings = st.cluster_settings("ue_multi", scope)
    q = st.cluster_quality("ue_multi", scope)
    if settings.empty or q.empty:
        return None, pd.DataFrame()
    return int(settings.chosen_k.iloc[0]), q.pivot_table(index="k", columns="metric", values="value")


def _refs(row: pd.Series) -> dict[str, float]:
    """The stored yardsticks of one scope at its chosen k (``reference:<source>`` rows of
    ``cluster_quality``, written by the pipeline; NaN where the store has none)."""
    return {src: float(row.get(f"reference:{src}", np.nan)) for src in REFERENCE_SOURCES}


def _variant(variants: pd.DataFrame, family: str, profile: str, smoothed: bool) -> str | None:
    """The scope of ``family`` at the default threshold with that profile and smoothing (None: not stored)."""
    v = variants[(variants.family == family) & (variants.profile == profile) & ((variants.smoothing > 0) == smoothed)]
    default_pct = variants.loc[variants.is_default.astype(bool), "percentile"]
    if len(default_pct) and pd.notna(default_pct.iloc[0]):
        v = v[np.isclose(v.percentile.astype(float), float(default_pct.iloc[0]))]
    return str(v.scope.iloc[0]) if len(v) else None


def _at_chosen(st: Store, scope: str | None, metric: str = "ari") -> tuple[int | None, float]:
    if scope is None:
        return None, np.nan
    k, q = _quality(st, scope)
    return k, (float(q.loc[k, metric]) if k is not None and metric in q else np.nan)


def measure(store: Path) -> dict:
    """Every target of issues 10 and 27 measured on one store: {row name: (value text, met bool or None)}."""
    rows: dict[str, tuple[str, bool | None]] = {}
    with Store(store) as st:
        variants = st.cluster_variants("ue_multi")
        marked = variants[variants.is_default.astype(bool)]
        default = str(marked.scope.iloc[0]) if len(marked) else "joint"
        d_profile = str(marked.profile.iloc[0]) if len(marked) else "embeddings"
        d_smoothed = bool(len(marked) and marked.smoothing.iloc[0] > 0)
        k, q = _quality(st, default)
        settings = st.cluster_settings("ue_multi", default)
        if k is not None:
            r = q.loc[k]
            rows["default view: scope, subjects, chosen k (stability)"] = (
                f"{default}: {', '.join(sorted(settings.subject))}; k = {k} "
                f"(stability {r.get('stability', q.loc[k].get('stability', np.nan)):.2f})", None)
            rows[f"default view category-region ARI >= {JOINT_TARGET}"] = (f"{r['ari']:.2f}",
                                                                             bool(r["ari"] >= JOINT_TARGET))
            rows[f"default view coverage >= {COVERAGE_TARGET:.0%}"] = (f"{100 * r['coverage']:.0f} %",
                                                                     bool(r["coverage"] >= COVERAGE_TARGET))
            rows["references: ARI of k-means on the test responses, noise-free simulated / ridge trained on "
                 "noise-free responses / measured / ridge-predicted (same vertices, same k, the test images all "
                 "subjects saw)"] = ("joint " + " / ".join(f"{v:.2f}" for v in _refs(r).values()), None)
            rows["default view homogeneity / completeness"] = (f"{r['homogeneity']:.2f} / {r['completeness']:.2f}",
                                                               None)
            prec = {c: r.get(f"precision:{c}", np.nan) for c in CATEGORIES}
            rows["top-10 tag precision >= 0.9 (default view)"] = (  # stored as float32: compare at the 1/10 resolution
                ", ".join(f"{c} {v:.1f}" for c, v in prec.items()), bool(all(round(v, 2) >= 0.9 for v in prec.values())))
            plain = _variant(variants, "joint:non-early", d_profile, False)
            kp, qp_ = _quality(st, plain) if plain else (None, pd.DataFrame())
            curve = qp_["stability"].dropna() if "stability" in qp_ else pd.Series(dtype=float)
            rows["stability curve (k: mean ARI)"] = (", ".join(f"{int(kk)}: {v:.2f}" for kk, v in curve.items()), None)
            rows["ARI at every k (default view)"] = (", ".join(f"{int(kk)}: {v:.2f}" for kk, v in q["ari"].items()),
                                                     None)
            if "agreement_with_plain" in q:
                rows["smoothing: ARI of the smoothed vs the plain labels at the chosen k"] = (
                    f"{q.loc[k, 'agreement_with_plain']:.2f}", None)
        # what is clustered, plain and smoothed: the joint default family at its own chosen k
        for profile in ("embeddings", "measured", "combined"):
            cells = []
            for smoothed in (False, True):
                kk, a = _at_chosen(st, _variant(variants, "joint:non-early", profile, smoothed))
                if kk is not None:
                    _, cov = _at_chosen(st, _variant(variants, "joint:non-early", profile, smoothed), "coverage")
                    cells.append(f"{'smoothed' if smoothed else 'plain'} {a:.2f} (k = {kk}, coverage {100 * cov:.0f} %)")
            if cells:
                rows[f"joint ARI at the chosen k, clustering {profile}"] = ("; ".join(cells), None)
        kw, qw = _quality(st, _variant(variants, "joint", d_profile, d_smoothed) or "joint")
        if kw is not None:
            rw = qw.loc[kw]
            rows["whole visual cortex (scope 'joint', default profile): chosen k, ARI, coverage"] = (
                f"k = {kw}, ARI {rw['ari']:.2f}, coverage {100 * rw['coverage']:.0f} %", None)
            rows["early visual: position variance explained (null)"] = (
                f"{rw.get('early_eta2', np.nan):.2f} ({rw.get('early_null_eta2', np.nan):.2f})", None)
        for s, target in PER_SUBJECT_TARGET.items():
            ks, qs = _quality(st, _variant(variants, s, d_profile, d_smoothed) or s)
            if ks is not None:
                a = qs.loc[ks, "ari"]
                _, emb_a = _at_chosen(st, _variant(variants, s, "embeddings", False))
                rows[f"{s} ARI >= {target} (default view, k of the joint scope)"] = (
                    f"{a:.2f} at k = {ks} (coverage {100 * qs.loc[ks, 'coverage']:.0f} %; embeddings alone "
                    f"{emb_a:.2f}; references: " + ", ".join(f"{src} {v:.2f}" for src, v in _refs(qs.loc[ks]).items())
                    + ")", bool(a >= target))
        _, qp = _quality(st, _variant(variants, "joint:PPA", "embeddings", False) or "joint:PPA")
        if len(qp):
            p = qp.loc[2]
            counts = ", ".join(f"sub-cluster {c}: indoor {10 * p.get(f'ppa{c}_indoor', np.nan):.0f}/10, "
                               f"outdoor {10 * p.get(f'ppa{c}_outdoor', np.nan):.0f}/10" for c in (0, 1))
            rows["PPA splits indoor / outdoor (>= 8/10 each)"] = (counts, bool(p.get("ppa_indoor_outdoor_split", 0) >= 1))
        roi = st.roi_metrics()
        med = roi[roi.roi == "all"].set_index(["model_id", "subject"])["median_r"]
        order_ok, parts = True, []
        for s in PER_SUBJECT_TARGET:
            try:
                m, u, r_ = med[("ue_multi", s)], med[(f"ue_single-{s}", s)], med[(f"ridge-{s}", s)]
            except KeyError:
                continue
            order_ok &= bool(m > u > r_)
            parts.append(f"{s} {m:.3f} / {u:.3f} / {r_:.3f}")
        rows["median r UE-multi > UE-single > ridge"] = ("; ".join(parts), order_ok)
        tc = st.transfer_curve()
        if len(tc):
            g = tc.groupby(["method", "n_train"])["median_r"].agg(["mean", "std", "count"])
            n_all = int(tc.n_train.max())
            ue100 = g.loc[("ue_transfer", 100)] if ("ue_transfer", 100) in g.index else None
            ridge_all = g.loc[("ridge", n_all)]
            if ue100 is not None:
                rows[f"transfer 100 images > ridge on all {n_all}"] = (
                    f"{ue100['mean']:.3f} +- {ue100['std']:.3f} (n = {int(ue100['count'])}) vs {ridge_all['mean']:.3f}",
                    bool(ue100["mean"] > ridge_all["mean"]))
            rows["transfer curve UE (mean over subsamples)"] = (
                ", ".join(f"{int(n)}: {v:.3f}" for (mth, n), v in g["mean"].items() if mth == "ue_transfer"), None)
            rows["transfer curve ridge"] = (
                ", ".join(f"{int(n)}: {v:.3f}" for (mth, n), v in g["mean"].items() if mth == "ridge"), None)
        ret = st.retrieval(model_id="ue_multi")
        ret = ret[ret.subject.isin(list(PER_SUBJECT_TARGET))]
        if len(ret):
            top1 = ret.set_index("subject")["top1"]  # fraction
            rows["retrieval top-1 UE-multi (~60 % of 200 before)"] = (
                ", ".join(f"{s} {v:.1%}" for s, v in top1.items()), bool(top1.min() >= 0.55))
        headline = json.loads(st.meta().get("headline", "{}") or "{}")
        cos = headline.get("clusters", {}).get("embedding_cosine_to_init", {})
        if cos:
            rows["cosine(final, initial embedding), ue_multi"] = (
                ", ".join(f"{s} {v:.2f}" for s, v in cos.items()), bool(max(cos.values()) < 0.5))
    return rows


def table(results: dict[str, dict]) -> str:
    seeds = list(results)
    names = list(dict.fromkeys(n for r in results.values() for n in r))
    mark = {True: "met", False: "NOT met", None: ""}
    lines = ["| target | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for n in names:
        cells = []
        for s in seeds:
            v = results[s].get(n)
            cells.append("-" if v is None else (f"{v[0]} **{mark[v[1]]}**" if v[1] is not None else v[0]))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", action="append", default=[], help="SEED=PATH of an existing store (repeatable)")
    ap.add_argument("--build", action="store_true", help="build the demo brain and run `precompute all` per seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 7])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results", help="where --build writes")
    ap.add_argument("--minutes", action="append", default=[], help="SEED=MINUTES of `precompute all` (optional)")
    a = ap.parse_args(argv)
    stores, minutes = {}, dict(m.split("=", 1) for m in a.minutes)
    if a.build:
        for seed in a.seeds:
            stores[str(seed)], mins = build(seed, a.out)
            minutes[str(seed)] = f"{mins:.1f}"
    for item in a.store:
        seed, path = item.split("=", 1)
        stores[seed] = Path(path)
    if not stores:
        ap.error("give --build or --store SEED=PATH")
    results = {}
    for seed, path in stores.items():
        results[seed] = measure(path)
        if seed in minutes:
            m = float(minutes[seed])
            results[seed]["`precompute all` <= 12 min (idle 2 cores)"] = (f"{m:.1f} min", m <= 12)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
