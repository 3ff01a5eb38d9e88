"""Put a role's managed files and paths on hosts; files holding secrets never reach output or --diff.

`secret_file` compares the remote sha256 with the wanted content (so an unchanged secret reports no change),
fixes owner and mode BEFORE content lands (pyinfra's sudo upload `cp`s onto the existing file, keeping its
mode), uploads through the deploy user's private 0700 temp dir, and logs only "contents hidden".
"""

from __future__ import annotations

import hashlib
import io
from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files
from pyinfra.operations.util.files import ensure_mode_int

from roles.common.manifest import private_temp_dir
from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

__all__ = ["private_temp_dir", "put_managed", "put_path", "secret_file"]


@operation()
def secret_file(dest: str, content: HiddenValue, user: str, group: str, mode: str, temp_dir: str):
    """Upload a file that holds secrets, comparing by checksum and never printing its content.

    + dest: remote path
    + content: the file's content wrapped in HiddenValue (prints as *MASKED*)
    + user/group/mode: final owner and mode, applied before the content is copied in
    + temp_dir: a 0700 directory of the SSH user for the upload's temporary copy

    Updates: an existing file with the same sha256, owner and mode is left alone (no change).
    """
    data = content.unmask().encode()
    wanted_sum = hashlib.sha256(data).hexdigest()
    wanted_mode = ensure_mode_int(mode)
    remote = host.get_fact(File, path=dest)
    if not remote:
        yield StringCommand("install", "-m", mode, "-o", user, "-g", group, "/dev/null", dest)
    else:
        if remote["user"] != user or remote["group"] != group:
            yield StringCommand("chown", f"{user}:{group}", dest)
        if remote["mode"] != wanted_mode:
            yield StringCommand("chmod", mode, dest)
    if not remote or host.get_fact(Sha256File, path=dest) != wanted_sum:
        logger.info(f"{host.print_prefix}Will write {dest} (contents hidden: contains secrets)")
        yield FileUploadCommand(io.BytesIO(data), dest,
                                remote_temp_filename=host.get_temp_filename(dest, temp_directory=temp_dir))
    elif remote and remote["user"] == user and remote["group"] == group and remote["mode"] == wanted_mode:
        host.noop(f"{dest} already holds the wanted secret content")


def put_managed(ctx: Context, item: ManagedFile, *, name: str) -> OperationMeta:
    """Put a role's managed file on the host: its content, path, owner and mode come from the entry.

    Templates are rendered with the host's context; control-node files (TLS certificates) are uploaded as
    they are; a file marked secret goes through `secret_file` (no diff, contents hidden, mode set first).
    """
    placed = item.placed(ctx)
    if item.secret:
        return secret_file(name=name, dest=placed.dest, content=HiddenValue(item.content(ctx)), user=placed.user,
                           group=placed.group, mode=placed.mode,
                           temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))
    src = io.StringIO(item.content(ctx)) if item.template is not None else item.source_path(ctx)
    return files.put(name=name, src=src, dest=placed.dest, user=placed.user, group=placed.group, mode=placed.mode)


def put_path(ctx: Context, item: ManagedPath) -> OperationMeta:
    """Create a role's managed directory, or fix an existing file's owner and mode, as the entry says."""
    placed = item.placed(ctx)
    what = f"{placed.dest} ({placed.user}:{placed.group} {placed.mode}{'; ' + item.why if item.why else ''})"
    if item.directory:
        return files.directory(name=f"Create {what}", path=placed.dest, user=placed.user, group=placed.group,
                               mode=placed.mode)
    return files.file(name=f"Keep {what}", path=placed.dest, user=placed.user, group=placed.group,
                      mode=placed.mode)
