"""Off-screen PNG renders of brain maps with pyvista (EGL / OSMesa), composed with matplotlib."""
from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np

from ._maps import DEFAULT_VIEW, HEMIS, VIEWS, _meshes, _mpl_cmap, layout_coords, outline_segments, vertex_rgb

__all__ = ["render_png"]


def render_png(
    values_by_hemi: Mapping[str, np.ndarray],
    surface: str = "inflated",
    hemis: Sequence[str] = HEMIS,
    cmap: str = "RdBu_r",
    categorical: bool = False,
    title: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    colorbar_title: str = "",
    category_names: Mapping | None = None,
    category_colors: Mapping | None = None,
    outlines: Mapping[str, np.ndarray] | None = None,
    views: Sequence[str] = ("posterior-ventral", "lateral (left)", "lateral (right)", "ventral"),
    size: tuple[int, int] = (1400, 1050),
    dpi: int = 200,
) -> bytes:
    """High-resolution PNG of a brain map, rendered off-screen with pyvista (EGL / OSMesa).

    One panel per view (flat surface: one top view), plus a colorbar or legend and the
    title, composed with matplotlib. Raises ``RuntimeError`` with a readable message when
    off-screen rendering is not available.
    """
    import os

    if not os.environ.get("DISPLAY"):  # headless server: render with EGL, no X connection attempt
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        import pyvista as pv
    except Exception as e:  # pragma: no cover
        raise RuntimeError(f"pyvista is not available: {e}") from e
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    hemis = tuple(h for h in HEMIS if h in hemis) or HEMIS
    if surface == "flat":
        views = ("top",)
    coords = layout_coords(surface, hemis)
    meshes = _meshes(surface)
    rgb, info = vertex_rgb(values_by_hemi, hemis=hemis, cmap=cmap, vmin=vmin, vmax=vmax, categorical=categorical,
                           category_colors_=category_colors, threshold=threshold)
    images = []
    try:
        for view in views:
            p = pv.Plotter(off_screen=True, window_size=list(size))
            p.set_background("white")
            for h in hemis:
                f = meshes[h][1]
                faces = np.hstack([np.full((len(f), 1), 3, np.int64), f.astype(np.int64)]).ravel()
                mesh = pv.PolyData(coords[h].astype(np.float64), faces)
                mesh.point_data["rgb"] = (rgb[h] * 255).astype(np.uint8)
                p.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True, ambient=0.35, diffuse=0.7,
                           specular=0.05)
                if outlines and outlines.get(h) is not None:
                    segs = outline_segments(outlines[h], h, surface, coords[h], lift=0.8)
                    if len(segs):
                        lines = pv.line_segments_from_points(segs.reshape(-1, 3).astype(np.float64))
                        p.add_mesh(lines, color="black", line_width=max(2, size[0] // 500))
            cam = VIEWS.get(view, VIEWS[DEFAULT_VIEW])
            allc = np.concatenate([coords[h] for h in hemis])
            center = (allc.min(0) + allc.max(0)) / 2
            radius = float(np.linalg.norm(allc.max(0) - allc.min(0)))
            eye = np.asarray(cam["eye"], float)
            eye = eye / np.linalg.norm(eye)
            p.camera.focal_point = tuple(center)
            p.camera.position = tuple(center + eye * radius * 1.9)
            p.camera.up = tuple(cam["up"])
            if surface == "flat":
                p.enable_parallel_projection()
            p.reset_camera_clipping_range()
            p.camera.zoom(1.35)
            img = p.screenshot(return_img=True)
            p.close()
            images.append((view, np.asarray(img)))
    except Exception as e:
        raise RuntimeError(f"off-screen rendering failed ({type(e).__name__}: {e})") from e
    if not images or all(np.asarray(im).std() < 1 for _, im in images):
        raise RuntimeError("off-screen rendering produced a blank image")

    n = len(images)
    w_in = size[0] / dpi * n * 0.75 + 1.6
    h_in = size[1] / dpi * 0.75 + (0.5 if title else 0.2)
    fig = plt.figure(figsize=(w_in, h_in), dpi=dpi)
    for i, (view, im) in enumerate(images):
        ax = fig.add_axes([0.01 + i * (0.86 / n), 0.02, 0.86 / n, 0.88 if title else 0.94])
        ax.imshow(im)
        ax.set_axis_off()
        ax.set_title(view, fontsize=8, color="#444")
    if categorical:
        names = dict(category_names or {})
        handles = [Patch(color=c, label=str(names.get(k, k))) for k, c in info["colors"].items()]
        if handles:
            fig.legend(handles=handles, loc="center right", fontsize=6, frameon=False, title=colorbar_title or None,
                       title_fontsize=7, ncol=1 if len(handles) <= 16 else 2)
    else:
        cax = fig.add_axes([0.905, 0.2, 0.015, 0.6])
        norm = matplotlib.colors.Normalize(info["vmin"], info["vmax"])
        cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=_mpl_cmap(cmap)), cax=cax)
        cb.ax.tick_params(labelsize=6)
        if colorbar_title:
            cb.set_label(colorbar_title, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()
