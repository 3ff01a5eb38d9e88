"""What the app role manages on an app host: config, EnvironmentFile, units, directories, user, package."""

from __future__ import annotations

from collections.abc import Callable

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath, SystemUser


def _app(key: str) -> Callable[[Context], str]:
    return lambda ctx: ctx["app"][key]


ENV = ManagedFile("app/env.j2", _app("env_file"), "root", _app("user"), "640", template="app/env.j2", secret=True,
                  trigger="app-env")
#: The owner role's database URL, for the deploy's schema commands: root-only, the app user cannot read it.
OWNER_ENV = ManagedFile("app/owner.env.j2", _app("owner_env_file"), "root", "root", "600", template="app/owner.env.j2",
                        secret=True, trigger="app-owner-env")
GUNICORN = ManagedFile("app/gunicorn.conf.py.j2", _app("gunicorn_conf"), "root", _app("user"), "640",
                       template="app/gunicorn.conf.py.j2", trigger="app-gunicorn")
#: The Gunicorn service first: its change decides a restart.
UNITS = tuple(ManagedFile(f"app/{unit}.j2", f"/etc/systemd/system/{unit}", "root", "root", "644",
                          template=f"app/{unit}.j2", trigger="app-units")
              for unit in ("talentsphere.service", "talentsphere-flush-views.service", "talentsphere-flush-views.timer"))
FILES = (ENV, OWNER_ENV, GUNICORN, *UNITS)

#: Root-owned: the app cannot change its own code.
BASE = ManagedPath(_app("base_dir"), "root", "root", "755", why="root-owned: the app cannot change its own code")
RELEASES = ManagedPath(_app("releases_dir"), "root", "root", "755", why="one venv per release")
ARTIFACTS = ManagedPath(_app("artifacts_dir"), "root", "root", "700", why="wheelhouses uploaded by the deploy")
CONFIG = ManagedPath(_app("config_dir"), "root", _app("user"), "750", why="readable by the app's group only")
PATHS = (BASE, RELEASES, ARTIFACTS, CONFIG)

USER = SystemUser(_app("user"))
USERS = (USER,)

SERVICE = "talentsphere.service"
FLUSH_TIMER = "talentsphere-flush-views.timer"
#: Units that change without touching Gunicorn.
FLUSH_UNITS = ("talentsphere-flush-views.service", FLUSH_TIMER)


def packages(ctx: Context) -> list[str]:
    return ["python3-venv"]
