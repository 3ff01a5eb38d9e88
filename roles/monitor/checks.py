"""How the monitor host's files are validated as candidates, each by its own tool, before any replaces its live
file: promtool for Prometheus's configuration and rules, amtool for Alertmanager's, the exporter itself for
the blackbox modules."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from roles.common.files import Check
from roles.monitor import manifest

_CONF = str(manifest.PROMETHEUS_CONF.path)
_ALERTMANAGER = str(manifest.ALERTMANAGER_CONF.path)
_BLACKBOX = str(manifest.BLACKBOX_CONF.path)


def _command(live: str, path: str) -> str:
    quoted = shlex.quote(path)
    if live == _CONF:
        # --syntax-only: the rule files it names are checked as candidates below, not where they live.
        return f"promtool check config --syntax-only {quoted}"
    if live == _ALERTMANAGER:
        return f"amtool check-config {quoted}"
    if live == _BLACKBOX:
        return f"prometheus-blackbox-exporter --config.check --config.file={quoted}"
    return f"promtool check rules {quoted}"


def _script(paths: Mapping[str, str]) -> str:
    return "\n".join(f"{_command(live, path)} || exit 1" for live, path in paths.items())


CHECK = Check(tool="promtool/amtool", script=_script,
              hint="correct templates/monitor/ (or the monitor_* variables) and deploy again")
