
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.paths import resolve_data_root
from tests import ROOT


def test_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_DATA", "/nonexistent")
    assert resolve_data_root(tmp_path) == tmp_path.resolve()


def test_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path.resolve()


def test_missing_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_DATA", str(tmp_path / "nope"))
    with pytest.raises(BrainVizDataError, match=r"BRAINVIZ_DATA.*not an existing folder"):
        resolve_data_root()


def test_default_shared(monkeypatch):
    monkeypatch.delenv("BRAINVIZ_DATA", raising=False)
    root = resolve_data_root()
    assert (root / "nsd_shared1000").is_dir()
    assert root == (ROOT.parent / "shared" / "data").resolve()
