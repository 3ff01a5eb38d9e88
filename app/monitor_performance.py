#!/usr/bin/env python3
"""The report's `python monitor_performance.py [--json]`: same as `talentsphere monitor`."""

import sys

from talentsphere.cli import main

if __name__ == "__main__":
    main(["monitor", *sys.argv[1:]])
