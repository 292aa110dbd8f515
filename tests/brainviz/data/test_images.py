"""Image sets (NSD shared1000, vim-1) and HED category scores."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainviz.data.images import CATEGORIES, hed_category_scores, image_key, load_nsd_shared1000, load_vim1
from brainviz.errors import BrainVizDataError
from brainviz.paths import resolve_data_root

# --------------------------------------------------------------------------- HED parsing


def test_faces_towards_beats_away_and_background():
    towards = hed_category_scores("(Foreground-view, (Item-count/1, (Human, Body, (Face, Towards))))")
    away = hed_category_scores("(Foreground-view, (Item-count/1, (Human, Body, (Face, Away-from))))")
    bg = hed_category_scores("(Background-view, (Item-count/1, (Human, Body, (Face, Towards))))")
    assert towards["faces"] == 1.0
    assert towards["faces"] > away["faces"] > 0
    assert towards["faces"] > bg["faces"] > 0
    assert towards["bodies"] == 1.0 and towards["people"] > 0
    none = hed_category_scores("(Foreground-view, (Item-count/1, Clock-face)), (Background-view, (Indoors, Room))")
    assert none["faces"] == 0 and none["bodies"] == 0 and none["people"] == 0


def test_crowds_and_counts():
    one = hed_category_scores("(Foreground-view, (Item-count/1, (Human, Body)))")
    crowd = hed_category_scores("(Foreground-view, ((Item-count, High), (Human, Body, (Face, Towards))))")
    assert crowd["people"] > one["people"]
    assert 0 < crowd["faces"] < 1.0  # many small faces


def test_objects_words_vehicles_food_animals():
    s = hed_category_scores("(Foreground-view, ((Item-count/2, Word), (Item-count/1, Car), Ingestible-object)), "
                            "(Background-view, (Animal, Outdoors, Natural-feature/Sky, Urban))")
    assert s["words"] == 1.0
    assert s["vehicles"] == 1.0
    assert s["food"] == 1.0
    assert 0 < s["animals"] < 1.0  # background only
    assert s["outdoor"] == 1.0 and s["indoor"] == 0.0
    assert s["places"] > 0.5
    char = hed_category_scores("(Foreground-view, (Item-count/1, Character))")
    assert 0 < char["words"] < 1


def test_indoor_scene():
    s = hed_category_scores("(Foreground-view, (Item-count/1, Furnishing)), (Background-view, (Room, Indoors, Furnishing))")
    assert s["indoor"] == 1.0 and s["outdoor"] == 0.0
    assert s["places"] >= 0.45
    assert s["faces"] == s["food"] == s["animals"] == 0.0
    room_only = hed_category_scores("(Background-view, (Room))")
    assert room_only["indoor"] == 0.8


def test_scores_in_range_and_empty():
    s = hed_category_scores("")
    assert set(s) == set(CATEGORIES) and all(v == 0 for v in s.values())
    s = hed_category_scores("(Foreground-view, ((Item-count/3, Animal), (Item-count/2, Animal), Vehicle, Boat))")
    assert all(0.0 <= v <= 1.0 for v in s.values())


@pytest.mark.parametrize("bad", ["(Foreground-view, (Face", "Face))", ")("])
def test_malformed_hed_raises(bad):
    with pytest.raises(BrainVizDataError):
        hed_category_scores(bad)


# --------------------------------------------------------------------------- real image sets


@pytest.fixture(scope="module")
def shared():
    return load_nsd_shared1000()


def test_nsd_shared1000(shared):
    assert len(shared) == 1000 and len(set(shared.keys)) == 1000
    # 0-based 73k NSD index, as the Algonauts release names its images: shared0001_nsd02951.png (1-based in
    # the file name of nsd_hed_labels) is NSD image 2950, the TSV's nsd_id
    assert shared.keys[0] == "nsd-02950" and shared.ids[0] == 2950
    assert all(k == image_key("nsd", i) for k, i in zip(shared.keys, shared.ids))
    assert list(shared.scores.index) == shared.keys
    cats = shared.scores[list(CATEGORIES)]
    assert ((cats >= 0) & (cats <= 1)).all().all()
    pos = (cats > 0.5).sum()
    # sane counts from the human tags
    assert 100 <= pos["faces"] <= 300
    assert 250 <= pos["bodies"] <= 600
    assert 150 <= pos["animals"] <= 400
    assert 60 <= pos["food"] <= 200
    assert 30 <= pos["words"] <= 150
    assert 150 <= pos["indoor"] <= 400 and 500 <= pos["outdoor"] <= 850
    assert shared.scores["tags"].str.contains("Foreground-view").mean() > 0.9
    im = shared.load(0)
    assert im.mode == "RGB" and im.size == (200, 200)
    g = shared.load_gray(0, 64)
    assert g.shape == (64, 64) and 0 <= g.min() <= g.max() <= 1


def test_nsd_ids_agree_with_tsv(shared):
    tsv = pd.read_csv(resolve_data_root() / "nsd_shared1000" / "shared1000_HED.tsv", sep="\t")
    by_name = dict(zip(tsv.File_Name, tsv.nsd_id))
    for p, i in zip(shared.paths[:50], shared.ids[:50]):
        assert by_name[p.name] == i  # keys use the TSV's 0-based nsd_id


def test_released_names_find_their_shared1000_tags(shared, tmp_path):
    """Images named as the Algonauts 2023 release names them (0-based 73k index) get their own tags, not a
    neighbour's: spot checks of known shared1000 images (HED tags of nsd_hed_labels' shared1000_HED.tsv)."""
    from brainviz.catalog import image_key as key_of_file

    food = key_of_file("train-0001_nsd-02950.png")  # shared0001: foreground food, many items, outdoors
    clock = key_of_file("test-0001_nsd-03146.png")  # shared0005: building with a clock face, outdoors
    dining = key_of_file("train-0100_nsd-08646.png")  # shared0100: furnishing and food, indoors
    sc = shared.scores
    assert sc.loc[food, "food"] == 1.0 and sc.loc[food, "outdoor"] == 1.0
    assert sc.loc[clock, "faces"] == 0.0 and sc.loc[clock, "outdoor"] == 1.0 and "Clock-face" in sc.loc[clock, "tags"]
    assert sc.loc[dining, "indoor"] == 1.0 and sc.loc[dining, "food"] > 0.5
    # the off-by-one neighbours are not shared images: no tags would be found for them
    assert "nsd-02951" not in sc.index and "nsd-03147" not in sc.index


def test_subset(shared):
    sub = shared.subset([5, 2])
    assert sub.keys == [shared.keys[5], shared.keys[2]]
    assert sub.category_matrix().shape == (2, len(CATEGORIES))


def test_vim1():
    v = load_vim1()
    assert len(v) == 1750 and v.keys[0] == "vim1-00000" and v.keys[-1] == "vim1-01749"
    assert v.scores[list(CATEGORIES)].isna().all().all()
    im = v.load(10)
    assert im.mode == "RGB" and im.size == (128, 128)
    assert v.paths[10].name == "10.jpg"


# --------------------------------------------------------------------------- malformed input


def _fake_nsd(root: Path, n: int = 3) -> Path:
    d = root / "nsd_shared1000"
    (d / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        name = f"shared{i + 1:04d}_nsd{100 + i:05d}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(d / "images" / name)
        rows.append({"File_Name": name, "nsd_id": 99 + i, "cocoId": 1, "HED_short": "(Foreground-view, Word)",
                     "HED_long": ""})
    pd.DataFrame(rows).to_csv(d / "shared1000_HED.tsv", sep="\t", index=False)
    return d


def test_fake_nsd_loads(tmp_path):
    _fake_nsd(tmp_path)
    s = load_nsd_shared1000(tmp_path, expected=3)
    assert s.keys == ["nsd-00099", "nsd-00100", "nsd-00101"]  # the 0-based nsd_id
    assert (s.scores["words"] == 1.0).all()


def test_nsd_missing_folder_and_tsv(tmp_path):
    with pytest.raises(BrainVizDataError, match="images"):
        load_nsd_shared1000(tmp_path)
    d = _fake_nsd(tmp_path)
    (d / "shared1000_HED.tsv").unlink()
    with pytest.raises(BrainVizDataError, match="shared1000_HED.tsv"):
        load_nsd_shared1000(tmp_path, expected=None)


def test_nsd_tsv_missing_column(tmp_path):
    d = _fake_nsd(tmp_path)
    tsv = d / "shared1000_HED.tsv"
    pd.read_csv(tsv, sep="\t").drop(columns=["HED_short"]).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(BrainVizDataError, match="HED_short") as err:
        load_nsd_shared1000(tmp_path, expected=None)
    assert err.value.path.endswith("shared1000_HED.tsv")


def test_nsd_count_mismatch(tmp_path):
    d = _fake_nsd(tmp_path)
    with pytest.raises(BrainVizDataError, match="expected 1000 images"):
        load_nsd_shared1000(tmp_path)
    next((d / "images").iterdir()).unlink()
    with pytest.raises(BrainVizDataError, match="rows"):
        load_nsd_shared1000(tmp_path, expected=None)


def test_nsd_id_disagreement(tmp_path):
    d = _fake_nsd(tmp_path)
    tsv = d / "shared1000_HED.tsv"
    df = pd.read_csv(tsv, sep="\t")
    df.loc[1, "nsd_id"] = 5
    df.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(BrainVizDataError, match="disagrees"):
        load_nsd_shared1000(tmp_path, expected=None)


def test_nsd_bad_name(tmp_path):
    d = _fake_nsd(tmp_path)
    shutil.copy(next((d / "images").iterdir()), d / "images" / "extra.png")
    with pytest.raises(BrainVizDataError):
        load_nsd_shared1000(tmp_path, expected=None)


def test_vim1_malformed(tmp_path):
    with pytest.raises(BrainVizDataError, match="vim-1 image folder"):
        load_vim1(tmp_path)
    d = tmp_path / "kay_vim1_stimuli" / "images"
    d.mkdir(parents=True)
    for i in (0, 1, 3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / f"{i}.jpg")
    with pytest.raises(BrainVizDataError, match="expected 1750"):
        load_vim1(tmp_path)
    with pytest.raises(BrainVizDataError, match="numbered"):
        load_vim1(tmp_path, expected=None)
    (d / "3.jpg").rename(d / "2.jpg")
    assert len(load_vim1(tmp_path, expected=None)) == 3
    (d / "2.jpg").write_bytes(b"broken")
    with pytest.raises(BrainVizDataError, match="2.jpg"):
        load_vim1(tmp_path, expected=None).load(2)
