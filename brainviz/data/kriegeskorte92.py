"""The Kriegeskorte et al. (2008, Neuron) 92-object image set with real brain RDMs.

Files (folder ``kriegeskorte92/`` of the shared data root; published in
rsagroup/rsatoolbox, ``demos/92imageData/``):

``Kriegeskorte_Neuron2008_supplementalData.mat``
    ``stimuli_92objs`` (92 structs: ``image`` 175x175x3 uint8, ``category`` text,
    flags ``human, face, animal, natural``), ``categoryVectors`` (92, 12) with
    ``categoryLabels`` (12,), and ``RDMs_mIT_hIT_fig1`` (condensed monkey-IT and
    group human-IT RDMs of the paper's figure 1).
``92_brainRDMs.mat``
    ``RDMs`` (4 subjects x 2 sessions) of human IT (fMRI), each 92x92.
``92_modelRDMs.mat``
    ``Models`` (8): animacy, FaceBodyManmadeNatobj, monkeyIT, EVA, HMAX, V1,
    Silhouette, RADON; 92x92 each.
``92_behavRDMs.mat``
    ``rdms_behav_92`` (16 subjects' similarity-judgement RDMs).
``rdm92_V1model.mat`` / ``rdm92_HMAXnatImPatch.mat``
    (identical contents) ``rdm92_V1model`` and ``rdm92_HMAXnatImPatch`` (92x92).

Image order is the order of ``stimuli_92objs`` (MATLAB order); image keys are
``k92-00001`` .. ``k92-00092`` (1-based, see docs/ARCHITECTURE.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BrainVizDataError
from ..paths import KRIEGESKORTE92, resolve_data_root

N_IMAGES = 92
SUPPLEMENTAL_FILE = "Kriegeskorte_Neuron2008_supplementalData.mat"
BRAIN_FILE = "92_brainRDMs.mat"
MODEL_FILE = "92_modelRDMs.mat"
BEHAV_FILE = "92_behavRDMs.mat"
V1_FILE = "rdm92_V1model.mat"
HMAX_PATCH_FILE = "rdm92_HMAXnatImPatch.mat"

#: ``categoryVectors`` column labels in the file -> our column names.
CATEGORY_COLUMNS: dict[str, str] = {
    "animate": "animate",
    "inanim": "inanimate",
    "human": "human",
    "nonhumani": "nonhuman",
    "body": "body",
    "face": "face",
    "natObj": "natural_object",
    "artiObj": "artificial_object",
    "rand24": "rand24",
    "rand48": "rand48",
    "other48": "other48",
    "monkeyape": "monkey_ape",
}

#: The reference model RDMs, in the order of ``92_modelRDMs.mat``.
REFERENCE_MODELS = ("animacy", "FaceBodyManmadeNatobj", "monkeyIT", "EVA", "HMAX", "V1",
                    "Silhouette", "RADON")


@dataclass
class K92:
    """The 92-image set and its RDMs. All RDMs are float64, symmetric, zero diagonal.

    Attributes
    ----------
    images : (92, 175, 175, 3) uint8
        RGB stimuli (objects on a grey background), in file order.
    image_keys : list[str]
        ``k92-00001`` .. ``k92-00092``, row order of everything below.
    categories : DataFrame (92 rows, index image_keys)
        ``category`` (str: human bodypart / human face / nonhuman bodypart /
        nonhuman face / natural inanimate / artificial inanimate), bool columns
        ``animate, inanimate, human, nonhuman, body, face, natural_object,
        artificial_object, rand24, rand48, other48, monkey_ape`` (from
        ``categoryVectors``; human/nonhuman/body/face are subsets of animate),
        and ``natural`` (bool flag of the stimulus struct: animate or natural
        object, i.e. not artificial).
    human_it : (8, 92, 92) float64
        Human IT fMRI RDMs (1 - Pearson), 4 subjects x 2 sessions, ordered
        subject-major: BE s1, BE s2, KO s1, KO s2, SN s1, SN s2, TI s1, TI s2.
    human_it_names : list[str]
        The 8 names as written in the file (``"hIT | BE | Session: 1"``).
    human_it_subjects : (8,) str array
        Subject code of each human RDM (``"BE"``...), for session averaging.
    monkey_it : (92, 92) float64
        Monkey IT RDM (674 neurons, Kiani et al. 2007), from the supplemental file.
    models : dict[str, (92, 92) float64]
        Reference model RDMs: the 8 of ``92_modelRDMs.mat`` (animacy and
        FaceBodyManmadeNatobj are binary categorical RDMs with many ties),
        ``HMAX-natImPatch`` (rdm92_HMAXnatImPatch), ``V1model`` only when it
        differs from ``V1`` (in the published files it is identical), and
        ``behaviour`` (mean of the 16 similarity-judgement RDMs).
    behaviour : (16, 92, 92) float64
        The individual similarity-judgement RDMs.
    behaviour_names : list[str]
    data_dir : Path
        The folder the files were read from.
    """

    images: np.ndarray
    image_keys: list[str]
    categories: pd.DataFrame
    human_it: np.ndarray
    human_it_names: list[str]
    human_it_subjects: np.ndarray
    monkey_it: np.ndarray
    models: dict[str, np.ndarray]
    behaviour: np.ndarray
    behaviour_names: list[str]
    data_dir: Path = field(default_factory=Path)

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    def pil_images(self) -> list:
        """The 92 stimuli as RGB ``PIL.Image.Image`` objects (175x175), in row order."""
        from PIL import Image

        return [Image.fromarray(np.ascontiguousarray(im)).convert("RGB") for im in self.images]

    def human_it_subject_mean(self) -> tuple[np.ndarray, list[str]]:
        """Session-averaged human IT RDMs.

        Returns
        -------
        rdms : (4, 92, 92) float64
            Mean of each subject's two session RDMs.
        subjects : list[str]
            Subject codes, in order of first appearance.
        """
        subjects = list(dict.fromkeys(self.human_it_subjects.tolist()))
        rdms = np.stack([self.human_it[self.human_it_subjects == s].mean(axis=0) for s in subjects])
        return rdms, subjects


def _load_mat(path: Path) -> dict:
    import scipy.io

    if not path.is_file():
        raise BrainVizDataError(path, "missing file of the kriegeskorte92 data set "
                                      "(published in rsagroup/rsatoolbox, demos/92imageData/)")
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise BrainVizDataError(path, f"not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from exc


def _get(mat: dict, path: Path, key: str):
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise BrainVizDataError(f"{path}:{key}", f"variable missing (found {found})")
    return mat[key]


def _attr(obj, path: Path, key: str, name: str):
    if not hasattr(obj, name):
        raise BrainVizDataError(f"{path}:{key}", f"struct has no field {name!r}")
    return getattr(obj, name)


def _as_rdm(value, where: str) -> np.ndarray:
    """Validate and return a (92, 92) float64 RDM; accepts condensed (4186,) too."""
    from scipy.spatial.distance import squareform

    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BrainVizDataError(where, f"RDM is not numeric ({exc})") from exc
    if arr.ndim == 1 and arr.size == N_IMAGES * (N_IMAGES - 1) // 2:
        arr = squareform(arr)
    if arr.shape != (N_IMAGES, N_IMAGES):
        raise BrainVizDataError(where, f"expected a 92x92 RDM, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BrainVizDataError(where, "RDM contains NaN or infinite values")
    if not np.allclose(arr, arr.T, atol=1e-6):
        raise BrainVizDataError(where, "RDM is not symmetric")
    if np.abs(np.diag(arr)).max() > 1e-6:
        raise BrainVizDataError(where, "RDM diagonal is not zero")
    arr = (arr + arr.T) / 2.0
    np.fill_diagonal(arr, 0.0)
    return arr


def _struct_list(value) -> list:
    return list(np.atleast_1d(value).ravel(order="C"))


def load_kriegeskorte92(data_root: str | Path | None = None) -> K92:
    """Load the 92-image set, its categories and all its RDMs.

    Parameters
    ----------
    data_root : str or Path, optional
        The shared data root (holding ``kriegeskorte92/``), or the
        ``kriegeskorte92`` folder itself. Default: :func:`brainviz.paths.resolve_data_root`.

    Returns
    -------
    K92

    Raises
    ------
    BrainVizDataError
        A file is missing, unreadable, lacks a variable, or holds an RDM of the
        wrong shape / not symmetric / non-zero diagonal / non-finite.
    """
    root = resolve_data_root(data_root)
    folder = root if (root / SUPPLEMENTAL_FILE).exists() else root / KRIEGESKORTE92
    if not folder.is_dir():
        raise BrainVizDataError(folder, "kriegeskorte92 folder not found under the data root")

    # --- stimuli and categories -------------------------------------------------------
    p = folder / SUPPLEMENTAL_FILE
    sup = _load_mat(p)
    stimuli = _struct_list(_get(sup, p, "stimuli_92objs"))
    if len(stimuli) != N_IMAGES:
        raise BrainVizDataError(f"{p}:stimuli_92objs", f"expected 92 stimuli, found {len(stimuli)}")
    images = []
    for k, s in enumerate(stimuli):
        im = np.asarray(_attr(s, p, "stimuli_92objs", "image"))
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise BrainVizDataError(f"{p}:stimuli_92objs[{k}].image",
                                    f"expected an HxWx3 uint8 image, got {im.shape} {im.dtype}")
        images.append(im)
    if len({im.shape for im in images}) != 1:
        raise BrainVizDataError(f"{p}:stimuli_92objs", "images do not all have the same size")
    images_arr = np.stack(images)

    keys = [f"k92-{i + 1:05d}" for i in range(N_IMAGES)]
    labels = [str(x) for x in np.atleast_1d(_get(sup, p, "categoryLabels"))]
    vectors = np.asarray(_get(sup, p, "categoryVectors"))
    if vectors.shape != (N_IMAGES, len(labels)):
        raise BrainVizDataError(f"{p}:categoryVectors",
                                f"expected shape (92, {len(labels)}), got {vectors.shape}")
    cats = pd.DataFrame(index=pd.Index(keys, name="image_key"))
    cats["category"] = [str(_attr(s, p, "stimuli_92objs", "category")) for s in stimuli]
    for j, lab in enumerate(labels):
        cats[CATEGORY_COLUMNS.get(lab, lab)] = vectors[:, j].astype(bool)
    cats["natural"] = np.array([int(_attr(s, p, "stimuli_92objs", "natural")) for s in stimuli], bool)

    fig1 = {str(_attr(r, p, "RDMs_mIT_hIT_fig1", "name")): r
            for r in _struct_list(_get(sup, p, "RDMs_mIT_hIT_fig1"))}
    mit_name = next((n for n in fig1 if n.startswith("mIT")), None)
    if mit_name is None:
        raise BrainVizDataError(f"{p}:RDMs_mIT_hIT_fig1", f"no monkey IT RDM (names {list(fig1)})")
    monkey_it = _as_rdm(_attr(fig1[mit_name], p, "RDMs_mIT_hIT_fig1", "RDM"), f"{p}:{mit_name}")

    # --- human IT ---------------------------------------------------------------------
    p = folder / BRAIN_FILE
    brain = _struct_list(_get(_load_mat(p), p, "RDMs"))
    if len(brain) != 8:
        raise BrainVizDataError(f"{p}:RDMs", f"expected 8 RDMs (4 subjects x 2 sessions), found {len(brain)}")
    names = [str(_attr(r, p, "RDMs", "name")) for r in brain]
    human = np.stack([_as_rdm(_attr(r, p, "RDMs", "RDM"), f"{p}:{n}") for r, n in zip(brain, names)])
    subjects = np.array([n.split("|")[1].strip() if n.count("|") >= 2 else n for n in names])

    # --- model RDMs -------------------------------------------------------------------
    p = folder / MODEL_FILE
    models: dict[str, np.ndarray] = {}
    for r in _struct_list(_get(_load_mat(p), p, "Models")):
        name = str(_attr(r, p, "Models", "name"))
        models[name] = _as_rdm(_attr(r, p, "Models", "RDM"), f"{p}:{name}")
    missing = [m for m in REFERENCE_MODELS if m not in models]
    if missing:
        raise BrainVizDataError(f"{p}:Models", f"missing model RDMs {missing}")

    p = folder / HMAX_PATCH_FILE
    models["HMAX-natImPatch"] = _as_rdm(_get(_load_mat(p), p, "rdm92_HMAXnatImPatch"),
                                        f"{p}:rdm92_HMAXnatImPatch")
    p = folder / V1_FILE
    v1 = _as_rdm(_get(_load_mat(p), p, "rdm92_V1model"), f"{p}:rdm92_V1model")
    if not np.allclose(v1, models["V1"]):
        models["V1model"] = v1

    # --- behaviour --------------------------------------------------------------------
    p = folder / BEHAV_FILE
    beh = _struct_list(_get(_load_mat(p), p, "rdms_behav_92"))
    beh_names = [str(_attr(r, p, "rdms_behav_92", "name")) for r in beh]
    behaviour = np.stack([_as_rdm(_attr(r, p, "rdms_behav_92", "RDM"), f"{p}:{n}")
                          for r, n in zip(beh, beh_names)])
    models["behaviour"] = behaviour.mean(axis=0)

    return K92(images=images_arr, image_keys=keys, categories=cats, human_it=human,
               human_it_names=names, human_it_subjects=subjects, monkey_it=monkey_it,
               models=models, behaviour=behaviour, behaviour_names=beh_names, data_dir=folder)
