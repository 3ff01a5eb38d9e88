"""The backup role's operations on a backup host: install and configure (`tasks`), then, once every host's roles
have converged, the stanza and the proof that archiving works (`finish`), and once every host finished, the first
backup and drill (`last`)."""

from pyinfra.api import deploy

from roles.backup import ROLE, configure, install, stanza
from roles.runtime import host_context


@deploy("Backup", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install pgBackRest (and the drill's PostgreSQL binaries), write its configuration, units and timers."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)


@deploy("Backup: stanza and archiving", data_defaults=ROLE.defaults)
def finish() -> None:
    """Create the stanza if a repository lacks it and prove with `pgbackrest check` that WAL archiving works.

    Both reach the db host's cluster (through its TLS server in split), so deploy.py runs them after a barrier
    every host shares: by then the db host's pgBackRest configuration, server and archive settings are in place.
    """
    backup = host_context()["backup"]
    stanza.stanza(name=f"Create the pgBackRest stanza {backup['stanza']} if a repository lacks it",
                  stanza=backup["stanza"])
    stanza.archiving_works(name=f"Check that {backup['db_host']} archives its WAL (pgbackrest check)",
                           stanza=backup["stanza"], db_host=backup["db_host"])


@deploy("Backup: first backup", data_defaults=ROLE.defaults)
def last() -> None:
    """When the repository holds no backup yet: take the first full one and drill its restore.

    After every host's `finish` (deploy.py's second barrier): the app's migrations have run, so the first
    backup holds the app's schema and the drill finds its tables and indexes.
    """
    backup = host_context()["backup"]
    stanza.first_backup(name="Take the first full backup and drill its restore if the repository holds none",
                        stanza=backup["stanza"], first_backup_unit=backup["backup_unit"].format(type="full"),
                        drill_unit=backup["drill_unit"], drill_result=backup["drill_result"])
