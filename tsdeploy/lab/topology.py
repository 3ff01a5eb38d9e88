"""Which hosts a lab has and which inventory groups each belongs to."""

from __future__ import annotations

from tsdeploy.lab.system import LabError

ALL_GROUPS = ("db", "cache", "app", "lb")
TOPOLOGIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    # One host plays every role: the smallest lab that exercises the whole deploy.
    "single": (("ts1", ALL_GROUPS),),
    # One host per role and two app hosts, so that nginx balances and firewalls between roles matter.
    "split": (
        ("db1", ("db",)),
        ("cache1", ("cache",)),
        ("app1", ("app",)),
        ("app2", ("app",)),
        ("lb1", ("lb",)),
    ),
}


def hosts_of(topology: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The (host, groups) pairs of `topology`, in address order."""
    try:
        return TOPOLOGIES[topology]
    except KeyError:
        raise LabError(f"topology {topology!r} is unknown: use one of {', '.join(TOPOLOGIES)}") from None
