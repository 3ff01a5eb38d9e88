"""Collect the roles' DEFAULTS (each role's data-only `roles/<role>/defaults.py`) without importing pyinfra.

The files are loaded by path so that the control tooling (context, validation, generators) does not import
the role packages, which import pyinfra operations.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

from tsdeploy import ROOT

ROLES_DIR = ROOT / "roles"
#: The order roles run in; a later role's default never overrides an earlier one's (names are prefixed).
ROLE_ORDER = ("common", "postgres", "redis", "app", "nginx")


def _load_defaults_file(path: pathlib.Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(f"_tsdeploy_defaults_{path.parent.name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.DEFAULTS)


def role_defaults(roles_dir: pathlib.Path = ROLES_DIR) -> dict[str, tuple[Any, str]]:
    """Return every role default as name -> (value, defining file), for the roles that have a defaults.py."""
    merged: dict[str, tuple[Any, str]] = {}
    for role in ROLE_ORDER:
        path = roles_dir / role / "defaults.py"
        if not path.is_file():
            continue
        for name, value in _load_defaults_file(path).items():
            merged.setdefault(name, (value, str(path.relative_to(roles_dir.parent))))
    return merged
