"""pyinfra entry point of `tsdeploy backup` and `tsdeploy drill`: start one unit on the backup host and wait.

TSDEPLOY_BACKUP_UNIT names the unit (pgbackrest-backup@<type>.service or pgbackrest-drill.service): the one
its timer starts, so that a manual run shares the timer's journal, lock and result.
"""

import os

from pyinfra import host

from roles.backup import restore
from roles.registry import role
from roles.runtime import start_run

start_run()

if role("backup").runs_on(host.groups):
    restore.run_unit(os.environ[restore.UNIT_ENV])
