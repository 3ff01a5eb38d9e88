"""The benchmark's parts: one module each, and PARTS, the one list that drives both the run and the report.

Every part module has:
- `run(bench) -> dict`: measures on the lab and returns the data recorded in the results file, including what
  it could not do;
- `NUMBER` and `title(data) -> str`: its numbered heading (`data` is empty when the part failed);
- `CLAIM`: what the seed report claims for it, worded from the claimed figures the module holds as data;
- `method(data, context) -> list[str]`: its bullets in the report's Method section (often none);
- `section(data, context) -> str`: its section of BENCHMARKS.md;
- `headline(data, context) -> str` and `verdict(data, context) -> str`: its row of the claims table.

The renderers read only `data` and the `ReportContext` (the run's machine, topology and recorded settings);
for a results file older than a key, they fall back to the constant the part itself uses. Importing a part
must not need the lab (the report and the unit tests import them): lab-only imports sit inside the functions
that use them.
"""

from . import backup, cache, dashboard, deploy, load, search, tuning, views

# Run order and report order: deploy first (it built the lab), the base-size parts, then search across growing
# sizes, backup across its own growing sizes (reseeded each, ending at the largest, the size search leaves and
# tuning needs), and tuning last at the largest size. Names are the keys in the results file.
PARTS = {"deploy": deploy, "views": views, "cache": cache, "dashboard": dashboard, "load": load,
         "search": search, "backup": backup, "tuning": tuning}
