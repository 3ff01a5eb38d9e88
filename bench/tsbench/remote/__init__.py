"""Programs the harness runs ON an app host with the app's venv and environment (global ARGS, JSON out).

They are sent as source over SSH (`BenchLab.app_python`), so they import only the app and its dependencies.
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    """The text of remote program `name` (e.g. "app_queries")."""
    return (Path(__file__).parent / f"{name}.py").read_text()
