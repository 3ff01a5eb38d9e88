#!/usr/bin/env python3
"""The report's `python optimize_database.py`: same as `talentsphere optimize-db`."""

from talentsphere.cli import main

if __name__ == "__main__":
    main(["optimize-db"])
