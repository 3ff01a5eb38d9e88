"""Which hosts a lab has and which inventory groups each belongs to, from the roles' registry."""

from __future__ import annotations

from roles.registry import GROUPS, Group
from tsdeploy.lab.system import LabError

#: Hosts per group in the split lab (1 unless named): two app hosts, so that nginx balances between them.
SPLIT_HOSTS = {Group.APP: 2}
#: Groups the split lab puts on another group's hosts instead of hosts of their own: PgBouncer beside
#: PostgreSQL, as on the usual production layout (one host fewer to build).
SPLIT_BESIDE = {Group.POOLER: Group.DB}
TOPOLOGIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    # One host plays every role: the smallest lab that exercises the whole deploy.
    "single": (("ts1", tuple(str(group) for group in GROUPS)),),
    # One host per group (db1, backup1, cache1, app1, app2, lb1, ...), so that firewalls between roles matter.
    "split": tuple((f"{group}{index}", (str(group), *(str(extra) for extra, host in SPLIT_BESIDE.items()
                                                      if host == group)))
                   for group in GROUPS if group not in SPLIT_BESIDE
                   for index in range(1, SPLIT_HOSTS.get(group, 1) + 1)),
}


def hosts_of(topology: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The (host, groups) pairs of `topology`, in address order."""
    try:
        return TOPOLOGIES[topology]
    except KeyError:
        raise LabError(f"topology {topology!r} is unknown: use one of {', '.join(TOPOLOGIES)}") from None
