"""The app's pages: script (relative to ``app.py``), sidebar label, Material icon.

The label is also each page's heading and, with " · BrainViz", its browser-tab title
(the home page is titled "BrainViz"). Streamlit's own page list is switched off in
``.streamlit/config.toml``; the sidebar shows these links instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

APP_NAME = "BrainViz"
HOME = "app.py"


@dataclass(frozen=True)
class Page:
    """One page of the app."""

    script: str  #: path relative to the folder of app.py
    label: str  #: sidebar link text and page heading
    icon: str  #: Material icon of the sidebar link

    @property
    def browser_title(self) -> str:
        """Title of the browser tab."""
        return APP_NAME if self.script == HOME else f"{self.label} · {APP_NAME}"


PAGES: tuple[Page, ...] = (
    Page(HOME, "Home", ":material/home:"),
    Page("pages/1_Voxel_clusters.py", "Voxel clusters", ":material/scatter_plot:"),
    Page("pages/2_RDM_explorer.py", "RDM explorer", ":material/grid_on:"),
    Page("pages/3_Live_prediction.py", "Live prediction", ":material/photo_camera:"),
    Page("pages/4_Model_evaluation.py", "Model evaluation", ":material/insights:"),
    Page("pages/5_Decoding.py", "Decoding", ":material/image_search:"),
    Page("pages/6_In_silico_experiment.py", "In-silico experiment", ":material/science:"),
)


def page_of(script: str) -> Page:
    """The registered page of a script path (absolute, e.g. a page's ``__file__``, or relative);
    KeyError when the script is not a registered page."""
    parts = PurePath(script).parts
    for page in PAGES:
        rel = PurePath(page.script).parts
        if parts[-len(rel):] == rel:
            return page
    raise KeyError(f"{script} is not a page of the app (webapp.pages.PAGES)")
