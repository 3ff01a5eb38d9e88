"""One module per part of issue 6; each has `run(bench) -> dict` and records what it could not do."""
