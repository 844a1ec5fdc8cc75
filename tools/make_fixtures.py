#!/usr/bin/env python3
"""Generate the small LSTM test fixtures in tests/data/ (see tests/data/README.md).

Usage:  pip install -r tools/requirements-fixtures.txt && python3 tools/make_fixtures.py [--out DIR]
                                                                  [--only NAME]

The fixtures' code is the package tools/fixtures/ (its __init__.py gives the conventions and
what each module holds); this script only runs it.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures.cli import main  # noqa: E402 (the package beside this script)

if __name__ == "__main__":
    main()
