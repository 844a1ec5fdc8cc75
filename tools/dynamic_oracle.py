#!/usr/bin/env python3
"""An outside check of `lstm-dse dynamic`, written from docs/NUMERICS.md and docs/OUTPUTS.md only
(not from src/dynamic/); see docs/FUZZING.md.

Usage:  python3 tools/dynamic_oracle.py [--bin target/release/lstm-dse] [--cases 60] [--seed 0]
                                        [--device cpu|gpu] [--mutate NAME] [--only TEXT]
                                        [--keep DIR]

The oracle's code is the package tools/oracle/ (its __init__.py says what a case draws, what the
oracle simulates and how it compares, and what each module holds); this script only runs it.
Exit status 1 if any case disagrees.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle.cli import main  # noqa: E402 (the package beside this script)

if __name__ == "__main__":
    main()
