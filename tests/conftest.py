"""Fixtures shared by every test folder."""
from __future__ import annotations

import pytest

from brainviz.sample_store import build_app_store


@pytest.fixture(scope="session")
def app_store(tmp_path_factory):
    """Path of the synthetic app store (brainviz.sample_store), built once per test session."""
    base = tmp_path_factory.getbasetemp() / "brainviz_app_store"
    store = base / "brainviz.duckdb"
    if not store.is_file():
        build_app_store(base)
    return store


@pytest.fixture
def with_store(app_store, monkeypatch):
    """The app store, named by BRAINVIZ_STORE for the app under test."""
    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))
    return app_store
