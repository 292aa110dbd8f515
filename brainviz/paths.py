"""Where BrainViz finds the shared data and keeps its outputs."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BrainVizDataError

#: The project root (the folder holding ``brainviz/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Generated outputs (demo brain, feature cache, store) live here; git-ignored.
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "data"
DEFAULT_DEMO_DIR = DEFAULT_OUTPUT_DIR / "demo_brain"
DEFAULT_STORE = DEFAULT_OUTPUT_DIR / "brainviz.duckdb"
DEFAULT_CACHE_DIR = DEFAULT_OUTPUT_DIR / "cache"

ENV_DATA = "BRAINVIZ_DATA"

#: Sub-folders of the shared data root, as described in its README.
NSD_SHARED1000 = "nsd_shared1000"
KRIEGESKORTE92 = "kriegeskorte92"
NOISE_CEILINGS = "algonauts2023_noise_ceiling"
FSAVERAGE_LABELS = "fsaverage_labels"
VIM1_STIMULI = "kay_vim1_stimuli"


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """Return the shared data folder.

    Order: the ``data_root`` argument, then ``$BRAINVIZ_DATA``, then
    ``../shared/data`` beside the project root when it exists.

    Raises
    ------
    BrainVizDataError
        When none of these is an existing folder; the message says how to set it.
    """
    if data_root is not None:
        root = Path(data_root).expanduser()
        source = "the data root argument"
    elif os.environ.get(ENV_DATA):
        root = Path(os.environ[ENV_DATA]).expanduser()
        source = f"${ENV_DATA}"
    else:
        root = PROJECT_ROOT.parent / "shared" / "data"
        source = "the default location"
        if not root.is_dir():
            raise BrainVizDataError(
                root,
                "no shared data folder found. Pass --data-root DIR or set "
                f"{ENV_DATA}=DIR to the folder that holds {NSD_SHARED1000}/, "
                f"{FSAVERAGE_LABELS}/ and {NOISE_CEILINGS}/ (see README.md, 'Data').",
            )
    if not root.is_dir():
        raise BrainVizDataError(root, f"data root given by {source} is not an existing folder")
    return root.resolve()
