"""TalentSphere benchmark harness: builds its own lab, measures every comparison side by side, reports.

Entry point: ``bench/run.py`` (``make bench``, ``make bench QUICK=1``). Statistics, results files, the report
and the part modules import nothing from the lab (a part reaches for it only when it runs), so the test suite
can exercise them, and the report can be regenerated, without hosts.
"""
