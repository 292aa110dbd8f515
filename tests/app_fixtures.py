"""The app tests' shared store: :func:`brainviz.sample_store.build_app_store`, built once per test session."""
from __future__ import annotations

from brainviz.sample_store import BACKBONE, CATS, N_K92, N_NSD, SUBJECTS, build_app_store  # noqa: F401


# --------------------------------------------------------------------------- pytest fixture
def _fixture():
    import pytest

    @pytest.fixture(scope="session")
    def app_store(tmp_path_factory):
        """Path of the synthetic store, built once per test session (shared by the app test modules)."""
        base = tmp_path_factory.getbasetemp() / "brainviz_app_store"
        store = base / "brainviz.duckdb"
        if not store.is_file():
            build_app_store(base)
        return store

    return app_store


app_store = _fixture()
