"""The Markdown the pages show about the data: the banner (SIMULATED or REAL), a missing store,
an unreadable store, and the build commands they name. Nothing here imports Streamlit."""
from __future__ import annotations

import os
from pathlib import Path

from brainviz.errors import BrainVizDataError

from .storefile import ENV_STORE

BUILD_COMMANDS = ("python -m precompute all", "make demo")
SIMULATED_LABEL = "SIMULATED"


def rebuild_hint(what: str) -> str:
    """``what`` (a sentence saying what the store lacks) followed by the build command."""
    return f"{what} Rebuild with `{BUILD_COMMANDS[0]}`."


def data_label(store) -> str:
    """'SIMULATED' or 'REAL' for banners."""
    return SIMULATED_LABEL if store.simulated else "REAL"


def banner(store) -> tuple[str, str]:
    """(kind, markdown) of the data banner every page shows: 'warning' for simulated data."""
    if store.simulated:
        return "warning", ("**SIMULATED data** — the demo brain: real NSD images and real anatomy, "
                           "but simulated fMRI responses with planted regions. Not real brain data.")
    return "info", "**REAL data** — responses from the dataset(s) listed on the Home page."


def missing_store_message(path: str | Path) -> str:
    """Markdown shown instead of an error when no store exists."""
    return (
        f"No BrainViz store at `{path}` yet. Build it once (about 10-20 minutes on 2 CPU cores; "
        "it simulates the demo brain from the real NSD images, extracts features, trains the "
        "encoders and runs every analysis):\n\n"
        f"```bash\n{BUILD_COMMANDS[0]}\n# or\n{BUILD_COMMANDS[1]}\n```\n\n"
        f"To open a store elsewhere, set `{ENV_STORE}=/path/to/brainviz.duckdb` before `streamlit run app.py`."
    )


def store_error_message(exc: BaseException, path: str | Path | None = None) -> str:
    """One markdown message for a store that cannot be read: the file, what is wrong, the fix."""
    text = str(exc)
    where = f"`{path}`" if path else "the store"
    if isinstance(exc, BrainVizDataError):
        same = path is not None and exc.path is not None and os.path.abspath(exc.path) == os.path.abspath(path)
        detail = exc.problem if same else text
        return f"**The BrainViz store {where} could not be opened:** {detail}"
    return (f"**The BrainViz store {where} cannot be read** ({type(exc).__name__}: {text.splitlines()[0] if text else ''}). "
            f"Rebuild it with `{BUILD_COMMANDS[0]}`.")


def random_weights_warning(backbone: str, how: str, what: str = "Everything in this store") -> str:
    """Markdown warning that ``backbone`` ran with a random initialization (``how``, e.g. "random init
    (seed 0)"): ``what`` (e.g. "Predictions") rests on features without learned visual knowledge."""
    return (f"**RANDOM backbone weights** — `{backbone}` ran with {how}, not trained "
            f"weights. {what} rests on features that carry no learned visual knowledge: encoders, clusters and "
            "RDMs say nothing about vision. Rebuild with `python -m precompute all --backbone "
            f"{backbone} --weights FILE`.")
