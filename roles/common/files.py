"""Put the files of tsdeploy.manifest on hosts; files holding secrets never reach output or --diff.

`secret_file` compares the remote sha256 with the wanted content (so an unchanged secret reports no change),
fixes owner and mode BEFORE content lands (pyinfra's sudo upload `cp`s onto the existing file, keeping its
mode), uploads through the deploy user's private 0700 temp dir, and logs only "contents hidden".
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files
from pyinfra.operations.util.files import ensure_mode_int

from tsdeploy import manifest


def private_temp_dir(deploy_user: str) -> str:
    """The deploy user's 0700 upload directory (created by the common role) for secret uploads."""
    return f"/var/lib/tsdeploy-upload/{deploy_user}"


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


def put_managed(ctx: dict[str, Any], key: str, *, name: str) -> OperationMeta:
    """Put the file `key` of tsdeploy.manifest on the host: its content, path, owner and mode come from there.

    Templates are rendered with the host's context; control-node files (TLS certificates) are uploaded as
    they are; a file marked secret goes through `secret_file` (no diff, contents hidden, mode set first).
    """
    item = manifest.get(key)
    placed = item.placed(ctx)
    if item.secret:
        return secret_file(name=name, dest=placed.dest, content=HiddenValue(item.content(ctx)), user=placed.user,
                           group=placed.group, mode=placed.mode,
                           temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))
    src = io.StringIO(item.content(ctx)) if item.template is not None else item.source_path(ctx)
    return files.put(name=name, src=src, dest=placed.dest, user=placed.user, group=placed.group, mode=placed.mode)
