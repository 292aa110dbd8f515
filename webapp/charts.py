"""Charts (not the brain maps) and tables of the pages: room for the tool bar, crowded labels, number formats,
table heights.

Streamlit-free. Plotly draws its tool bar (download, zoom, pan, reset) over the top right corner of a chart;
with a small top margin it covers the tallest bar, a title or a bar label. :data:`CONFIG` keeps the tool bar
to one row of the buttons a reader uses and :func:`tidy` leaves that row free above the plot area.
tests/webapp/test_layout.py checks every page in a browser.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: ``st.plotly_chart(fig, config=CONFIG)``: no logo, no box / lasso select and +/- zoom buttons (one row).
CONFIG = {"displaylogo": False,
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]}
#: px above the plot area kept free for the tool bar (one row of 25 px buttons + a gap).
TOOLBAR_PX = 36
#: Scatter charts of at most this many dots draw with SVG (``go.Scatter``), larger ones with WebGL
#: (``go.Scattergl``). Streamlit hands Plotly a new figure whenever it changed (a Voxel clusters k or cluster
#: change recolours the 2-D map), and a WebGL chart then builds its WebGL scene anew: with software WebGL ~80 ms
#: of the page's main thread in ``getContext`` alone per k change, delaying the brain map drawn beside it
#: (bench/RESULTS.md, "What was still in the way"). SVG stays light up to a few thousand dots.
SVG_MAX_POINTS = 3_000


def tidy(fig, top: int | None = None):
    """Top margin of ``fig`` at least :data:`TOOLBAR_PX` (``top`` px when given, e.g. a title above the plot
    area needs more); returns ``fig``. A title is put at the left, clear of the tool bar at the right."""
    m = fig.layout.margin
    want = max(int(m.t) if m.t is not None else 0, TOOLBAR_PX if top is None else int(top))
    fig.update_layout(margin=dict(t=want))
    if fig.layout.title is not None and fig.layout.title.text:
        fig.update_layout(title=dict(x=0.0, xanchor="left", xref="paper", y=1.0, yref="paper", yanchor="bottom",
                                     pad=dict(b=8)))
        fig.update_layout(margin=dict(t=max(want, TOOLBAR_PX + 24)))
    return fig


def scatter_type(n_points: int):
    """The Plotly scatter trace class for ``n_points`` dots: ``go.Scatter`` (SVG) up to :data:`SVG_MAX_POINTS`,
    ``go.Scattergl`` (WebGL) above."""
    import plotly.graph_objects as go

    return go.Scatter if n_points <= SVG_MAX_POINTS else go.Scattergl


def spaced_ticks(starts: Sequence[int], ends: Sequence[int], labels: Sequence[str], n: int, axis_px: float,
                 font_px: float = 12.0) -> tuple[list[float], list[str]]:
    """Tick positions and labels of blocks ``[start, end)`` of an axis of ``n`` cells drawn over ``axis_px``
    pixels, without labels on top of each other: a block's label is kept when its centre is at least
    1.2 label heights from the previous kept label (the largest blocks are placed first)."""
    px = axis_px / max(1, n)
    centres = [(a + b - 1) / 2 for a, b in zip(starts, ends)]
    order = sorted(range(len(centres)), key=lambda i: -(ends[i] - starts[i]))
    kept: list[int] = []
    for i in order:
        if all(abs(centres[i] - centres[j]) * px >= 1.2 * font_px for j in kept):
            kept.append(i)
    kept.sort()
    return [centres[i] for i in kept], [labels[i] for i in kept]


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces (a longer word keeps its line);
    join with ``<br>`` for a Plotly label."""
    import textwrap

    return textwrap.wrap(str(text), width=width, break_long_words=False) or [""]


def percent(x: float | None, digits: int = 0) -> str:
    """``0.5833`` -> ``'58%'``, as ``f"{x:.0%}"`` (every top-1 / top-5 / share of the app is written this way)."""
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}%}"


#: Streamlit NumberColumn format of a column made by :func:`percent_table` (58%, like :func:`percent`).
PERCENT_FORMAT = "%.0f%%"


def percent_table(df, columns: Sequence[str]):
    """Copy of ``df`` with ``columns`` (fractions) in percent, to show with :data:`PERCENT_FORMAT`
    (Streamlit's own "percent" format writes 58.33%, the rest of the app 58%)."""
    out = df.copy()
    for c in columns:
        if c in out:
            out[c] = 100 * out[c].astype(float)
    return out


# --------------------------------------------------------------------------- tables
def drop_empty(df, columns: Sequence[str]):
    """``df`` without those of ``columns`` that hold no value at all (e.g. noise-normalized accuracy of a dataset
    without repetitions: a column of "None" says nothing; the page's skip note says why it is missing)."""
    empty = [c for c in columns if c in df and df[c].isna().all()]
    return df.drop(columns=empty)


def table_height(n_rows: int, max_rows: int = 12) -> int:
    """px of an ``st.dataframe`` that shows ``n_rows`` rows without scrolling (up to ``max_rows``)."""
    return 38 + 35 * max(1, min(int(n_rows), max_rows))


def subject_list(subjects) -> str:
    """``['subj01', 'subj02', 'subj03', 'subj04']`` -> ``'subj01-subj04'`` (runs of consecutive subjects
    shortened, so a model's subjects fit a table column); ``None`` -> ``''``."""
    import re

    if subjects is None:
        return ""
    subs = [str(s) for s in subjects]
    nums = [re.fullmatch(r"subj(\d+)", s) for s in subs]
    if len(subs) > 2 and all(nums):
        n = [int(m.group(1)) for m in nums]
        if n == list(range(n[0], n[0] + len(n))):
            return f"{subs[0]}-{subs[-1]}"
    return ", ".join(subs)
