"""Pipeline subcommands (features, train, evaluate, analyze, all)."""
from __future__ import annotations

import argparse


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register the pipeline subcommands on ``sub``."""
    return None
