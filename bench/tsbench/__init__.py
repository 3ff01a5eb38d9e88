"""TalentSphere benchmark harness: builds its own lab, measures every comparison side by side, reports.

Entry point: ``bench/run.py`` (``make bench``, ``make bench QUICK=1``). Pure parts (statistics, results,
report) import nothing from the lab so the test suite can exercise them without hosts.
"""
