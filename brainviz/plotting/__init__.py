"""Brain maps on the fsaverage5 surface: the one public plotting entry.

Every map is a dict ``{hemi: (10242,) float}`` with NaN where a vertex has no value.

* :func:`vertex_values_to_fsaverage5` turns a challenge-space vector (V,) into such a map.
* :func:`brain_figure` / :func:`map_figure`: interactive Plotly figures (engine module ``_plotly``;
  ``map_figure`` is the cached fast path for continuous maps that change often).
* :func:`render_png`: the same map rendered off-screen with pyvista, as PNG bytes (engine module ``_pyvista``).
* :func:`view_payload` / :func:`mesh_asset`: what the app's browser brain view (WebGL) needs: the
  meshes once (a static asset per surface) and, per map, a small payload (engine module ``_webgl``).
* Engine-independent helpers (colors, limits, ROI outlines, layout) live in ``_maps``.

Surfaces: ``inflated`` (default; hemispheres placed side by side), ``pial`` and ``flat``
(nilearn's fsaverage5 flat patches, viewed from above). Meshes and sulcal depth come
only from :mod:`brainviz.data.surfaces` (nilearn's bundled fsaverage5, no download).
"""
from ._maps import (BACKGROUND_GRAY, DEFAULT_VIEW, HEMIS, N_FSAVERAGE5, PALETTE, SURFACES, VIEWS, background_shading,
                    category_colors, color_limits, fade_color, layout_coords, outline_segments, outline_vertices,
                    roi_label_positions, vertex_rgb, vertex_values_to_fsaverage5)
from ._plotly import brain_figure, map_figure
from ._pyvista import render_png
from ._webgl import ViewPayload, mesh_asset, mesh_asset_name, view_payload

__all__ = [
    "BACKGROUND_GRAY", "DEFAULT_VIEW", "HEMIS", "N_FSAVERAGE5", "PALETTE", "SURFACES", "VIEWS",
    "background_shading", "brain_figure", "category_colors", "color_limits", "fade_color", "layout_coords",
    "map_figure", "mesh_asset", "mesh_asset_name", "outline_segments", "outline_vertices", "render_png",
    "roi_label_positions", "vertex_rgb", "vertex_values_to_fsaverage5", "view_payload", "ViewPayload",
]
