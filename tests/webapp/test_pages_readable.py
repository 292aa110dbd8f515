"""Pages say what their numbers are (Streamlit AppTest, synthetic store): one scale for r and its ceiling,
the identification method that works first, an effect-size threshold beside FDR, a teaching example, a tour
with every page, tables without 'None', and the helpers behind them (webapp/charts.py)."""
from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.apptest import HOME, TIMEOUT, page, run, texts
from webapp import charts as C
from webapp import viewmodel as V


# --------------------------------------------------------------------------- helpers
def test_tidy_leaves_the_toolbar_row_free_and_moves_titles_left():
    import plotly.graph_objects as go

    fig = C.tidy(go.Figure(go.Bar(x=[1], y=[1])).update_layout(margin=dict(t=10)))
    assert fig.layout.margin.t == C.TOOLBAR_PX
    fig = C.tidy(go.Figure(go.Bar(x=[1], y=[1])).update_layout(margin=dict(t=80)))
    assert fig.layout.margin.t == 80  # never less than asked for
    titled = C.tidy(go.Figure(go.Bar(x=[1], y=[1])).update_layout(title="a title", margin=dict(t=10)))
    assert titled.layout.title.x == 0 and titled.layout.title.xanchor == "left"
    assert titled.layout.margin.t >= C.TOOLBAR_PX + 24  # the title's line above the tool bar's row


def test_spaced_ticks_leave_out_labels_that_would_overlap():
    # 3 big blocks and 5 one-image blocks in 100 images over 200 px: 2 px per image
    starts = [0, 30, 31, 32, 33, 34, 60, 99]
    ends = [30, 31, 32, 33, 34, 60, 99, 100]
    labels = list("abcdefgh")
    vals, text = C.spaced_ticks(starts, ends, labels, 100, 200, font_px=12)
    px = np.diff(vals) * 2
    assert (px >= 1.2 * 12).all()
    assert {"a", "f", "g"} <= set(text) and len(text) < len(labels)
    assert C.spaced_ticks(starts, ends, labels, 100, 5000)[1] == labels  # room for every label


def test_percent_and_tables():
    assert C.percent(0.5833) == "58%" and C.percent(0.005, 1) == "0.5%" and C.percent(float("nan")) == "—"
    df = C.percent_table(pd.DataFrame({"top1": [0.5833], "x": [1.0]}), ["top1", "missing"])
    assert df["top1"].iloc[0] == pytest.approx(58.33) and df["x"].iloc[0] == 1.0
    assert C.subject_list(["subj01", "subj02", "subj03", "subj04"]) == "subj01-subj04"
    assert C.subject_list(["subj01", "subj03"]) == "subj01, subj03" and C.subject_list(None) == ""
    assert C.table_height(3) < C.table_height(20) == C.table_height(12)
    assert V.scope_label("joint:non-early", short=True) == "joint · outside V1-hV4"
    assert V.scope_label("joint", short=True) == "joint · whole visual cortex"


def test_example_image_picks_a_clear_face():
    tags = pd.DataFrame({"faces": [0.9, 1.0, 1.0, 0.0], "places": [0.0, 0.8, 0.0, 1.0]},
                        index=["a", "b", "c", "d"])
    assert V.example_image(list(tags.index), tags, "faces", avoid=("places",)) == "c"  # 1.0 and no scene
    assert V.example_image(list(tags.index), tags, "places") == "d"
    assert V.example_image(["a"], tags, "places") is None


# --------------------------------------------------------------------------- pages
def test_evaluation_shows_r_and_its_ceiling_on_one_scale(with_store):
    from brainviz.store.reader import Store

    at = run(page("4_Model_evaluation"))
    metrics = {m.label: m.value for m in at.metric}
    with Store(with_store) as st:
        vm = st.vertex_metrics(at.selectbox[0].value, at.selectbox[1].value)
    assert metrics["median r"] == f"{vm['r'].median():.3f}"
    assert metrics["median ceiling on r (√nc)"] == f"{np.sqrt(vm['nc'].median()):.3f}"
    assert metrics["median r² / nc"] == f"{vm['nna'].median():.2f}"
    assert "median noise ceiling" not in metrics  # nc beside r read as 'the model beats the ceiling'
    assert "Pair-dissimilarity model" in [h.value for h in at.subheader]
    pair = at.dataframe[-1].value
    assert "None" not in pair.astype(str).to_numpy() and "baseline (embedding distance)" in pair.columns


def test_decoding_opens_on_the_method_that_works(app_store, tmp_path, monkeypatch):
    """A store whose encoder identifies the images and whose decoder does not: the page opens on the encoder,
    says why the decoder is weaker, and explains the rows that are the same ranking."""
    path = tmp_path / "brainviz.duckdb"
    shutil.copy(app_store, path)
    con = duckdb.connect(str(path))
    dec = con.execute("SELECT * FROM decoding").df()
    enc = dec.copy()
    enc["approach"], enc["rank"] = "encoder:ue_multi", 1
    dec["approach"] = "decoder"
    dec["rank"] = np.where(dec["rank"] == 1, 2, dec["rank"])  # never first
    rows = pd.concat([dec, enc], ignore_index=True)  # noqa: F841  (read by duckdb below)
    con.execute("DELETE FROM decoding")
    con.execute("INSERT INTO decoding BY NAME SELECT * FROM rows")
    n = {s: int(v) for s, v in con.execute("SELECT subject, n_lh + n_rh FROM subjects").fetchall()}
    rois = pd.DataFrame([dict(subject=s, roi_set=rs, roi=roi, n_vertices=nv) for s in n for rs, roi, nv in (
        ("set1", "V1v", 40), ("set1", "FFA-1", 0), ("set2", "FFA-1", 0), ("set3", "ventral", n[s]))])  # noqa: F841
    con.execute("DELETE FROM decoding_rois")
    con.execute("INSERT INTO decoding_rois BY NAME SELECT * FROM rois")
    con.close()
    monkeypatch.setenv("BRAINVIZ_STORE", str(path))
    at = run(page("5_Decoding"))
    assert at.radio(key="img_approach").value == "encoder:ue_multi"
    assert not [m for m in at.markdown if str(m.value).strip() == "None"]  # no stray values written by the page
    msg = texts(at)
    assert "finds it best here (top-1 **100%**" in msg and "The **decoder** is far weaker (top-1 0%)" in msg
    # the fixture's ROI sets rank every image alike: said once, as one group per approach
    assert "Identical rows: " in msg and "**set1** = **set2** = **set3** = **vote** for UE, decoder: the same" in msg
    roi_list = next(m.value for m in at.markdown if "- **set1**" in str(m.value))
    assert all(roi_list.count(f"**{s}**") == 1 for s in ("set1", "set2", "set3"))  # each set on one line
    assert "- **set3**: ventral" in roi_list and "every vertex: the same as whole cortex" in roi_list
    assert "**set3** covers every vertex of subj01's data" in msg


def test_insilico_thresholds_by_effect_size_as_well(with_store):
    at = run(page("6_In_silico_experiment"))
    assert at.select_slider(key="is_min_d").value == 0.5
    msg = texts(at)
    assert "FDR alone (q = 0.05) marks" in msg and "with |d| ≥ 0.5 as well" in msg
    assert "no trial-to-trial noise" in msg
    n_strict = int(at.metric[2].value) + int(at.metric[3].value)
    at.select_slider(key="is_min_d").set_value(0.0)
    run(at)
    assert int(at.metric[2].value) + int(at.metric[3].value) >= n_strict


def test_live_page_opens_on_a_face_with_outlines(with_store):
    from brainviz.store.reader import Store

    at = run(page("3_Live_prediction"))
    with Store(with_store) as st:
        tags = st.image_tags()
    picked = at.selectbox(key="ex_a").value
    assert tags.loc[picked, "faces"] > 0.5
    assert at.selectbox(key="live_outlines").value == "faces (floc-faces)"


def test_home_tour_visits_every_page_and_tables_fit(with_store):
    from streamlit.testing.v1 import AppTest

    at = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    links = [e.proto.label for e in at.get("page_link")]
    tour = [x for x in links if x[:1].isdigit()]
    assert len(tour) == 6 and tour[-1] == "6 · In-silico experiment"  # a step for every page
    models = next(d.value for d in at.dataframe if "model_id" in d.value.columns and "backbone" in d.value.columns)
    assert models["subjects"].str.len().max() <= 30  # subj01-subj04, not a list that runs off the table


def test_cluster_evidence_table_from_new_and_old_descriptions():
    new = {"bodies": {"count": 10, "n": 10, "base_rate": 0.41, "p_value": 1e-4, "ratio": 2.4, "effect": 0.52,
                      "effect_others": 0.3},
           "faces": {"count": 10, "n": 10, "base_rate": 0.18, "p_value": 1e-7, "ratio": 5.5, "effect": 0.28,
                     "effect_others": 0.81},
           "_fit": {"r2": 0.76, "n_images": 969, "rule": "..."}}
    table, fit = V.cluster_evidence(new)
    assert table["category"].tolist() == ["bodies", "faces"]  # by effect, not by top-image enrichment
    assert table.loc[0, "top 10"] == "10/10" and table.loc[0, "base rate"] == pytest.approx(41)
    assert fit == {"r2": 0.76, "n_images": 969, "rule": "..."}
    old = {"faces": {"count": 4, "n": 6, "frac": 0.67, "base_rate": 0.25, "ratio": 2.7, "p_value": 0.01},
           "food": {"count": 1, "n": 6, "frac": 0.17, "base_rate": 0.1, "ratio": 1.7, "p_value": 0.4}}
    table, fit = V.cluster_evidence(old)  # an older store: no effects, sorted by enrichment
    assert table["category"].tolist() == ["faces", "food"] and "effect" not in table and fit is None
