"""BrainViz tests: one folder per package (tests/brainviz/data mirrors brainviz/data, ...);
shared fixtures in conftest.py, app-test helpers in apptest.py, the precompute CLI run in-process in
precompute_cli.py, data fixtures in *_fixtures.py / released_layout.py."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
