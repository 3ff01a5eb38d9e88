"""`tsdeploy tune`: print PGTune's postgresql.conf settings for a host, each with the reason behind it.

Settings go to stdout (ready for a conf.d drop-in), warnings to stderr. With the app topology
(`--app-hosts --workers --pool --overflow`) max_connections is derived from the demand; `--connections`
then acts as the limit the demand must fit.
"""

from __future__ import annotations

import click

from tsdeploy import tuning, units


def _fail(param: click.Parameter, message: str) -> click.ClickException:
    """A one-line error naming the option (ClickException prints no usage block)."""
    return click.ClickException(f"invalid value for '{param.opts[0]}': {message}")


def _memory(_ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return units.parse_size(value)
    except ValueError as err:
        raise _fail(param, str(err)) from None


def _cpus(_ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return tuning.parse_cpus(value)
    except ValueError as err:
        raise _fail(param, str(err)) from None


def _count(minimum: int):
    """A callback accepting an optional whole number of at least `minimum`."""

    def check(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise _fail(param, f"{value!r} is not a whole number of at least {minimum}")
        return number

    return check


@click.command()
@click.option("--memory", required=True, callback=_memory, metavar="SIZE",
              help="RAM of the database host, e.g. 16GB, 512MB, 2GiB (1024-based).")
@click.option("--cpus", required=True, callback=_cpus, metavar="N", help="CPUs of the database host (>= 1).")
@click.option("--connections", callback=_count(1), metavar="N",
              help="max_connections; with a topology, the limit its demand must fit.")
@click.option("--profile", type=click.Choice(tuning.PROFILES), default="web", show_default=True,
              help="Workload type, as PGTune's 'DB type'.")
@click.option("--storage", type=click.Choice(tuning.STORAGES), default="ssd", show_default=True,
              help="Data storage.")
@click.option("--pg-version", callback=_count(tuning.MIN_PG_VERSION), default="15", show_default=True,
              metavar="N", help="PostgreSQL major version.")
@click.option("--os-type", type=click.Choice(tuning.OS_TYPES), default="linux", show_default=True)
@click.option("--db-size", type=click.Choice(tuning.DB_SIZES), default="mid_ram", show_default=True,
              help="Data size compared with RAM, as PGTune's 'DB size'.")
@click.option("--app-hosts", callback=_count(1), metavar="N", help="App hosts (topology).")
@click.option("--workers", callback=_count(1), metavar="N", help="Gunicorn workers per app host (topology).")
@click.option("--pool", callback=_count(1), metavar="N", help="SQLAlchemy pool_size per worker (topology).")
@click.option("--overflow", callback=_count(0), metavar="N", help="SQLAlchemy max_overflow per worker (topology).")
@click.option("--headroom", callback=_count(0), default=str(tuning.DEFAULT_HEADROOM), show_default=True,
              metavar="N", help="Connections kept free beyond the app's pools (superuser, cron, monitoring).")
def tune(memory: int, cpus: int, connections: int | None, profile: str, storage: str, pg_version: int,
         os_type: str, db_size: str, app_hosts: int | None, workers: int | None, pool: int | None,
         overflow: int | None, headroom: int) -> None:
    """Print PGTune's postgresql.conf settings, each preceded by its reason; warnings go to stderr."""
    topology = _topology(app_hosts, workers, pool, overflow, headroom)
    limit = connections if topology else None
    if topology:
        derived, reason = tuning.topology_connections(app_hosts=app_hosts, workers=workers, pool_size=pool,
                                                      max_overflow=overflow, headroom=headroom)
        connections = min(derived, limit) if limit else derived
    result = tuning.tune(memory=memory, cpus=cpus, storage=storage, profile=profile, pg_version=pg_version,
                         connections=connections, os_type=os_type, db_size=db_size)
    if topology:
        capped = f", capped at --connections {limit}" if limit and limit < derived else ""
        result.settings["max_connections"] = tuning.Setting(str(connections), f"topology: {reason}{capped}")
    warnings = result.warnings + tuning.demand_warnings(tuning=result, memory=memory, topology=topology, limit=limit)
    click.echo(f"# PGTune for PostgreSQL {pg_version}, {os_type}, {profile}, {tuning.format_kb(memory / 1024)} RAM, "
               f"{cpus} CPUs, {storage}, data {db_size}")
    click.echo(result.as_conf(), nl=False)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _topology(app_hosts: int | None, workers: int | None, pool: int | None, overflow: int | None,
              headroom: int) -> tuning.Topology | None:
    """The app topology when its four options are given, None when none is; an error for a partial set."""
    given = {"--app-hosts": app_hosts, "--workers": workers, "--pool": pool, "--overflow": overflow}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) == len(given):
        return None
    if missing:
        raise click.ClickException(f"the topology needs {', '.join(given)} together; missing {', '.join(missing)}")
    return tuning.Topology(app_hosts, workers, pool, overflow, headroom)
