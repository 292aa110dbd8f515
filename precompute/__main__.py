"""``python -m precompute``: the offline precompute CLI of BrainViz."""
from .cli import main

raise SystemExit(main())
