"""Put files on hosts: rendered templates, and files holding secrets that never reach output or --diff.

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

from tsdeploy.templating import render


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


def put_rendered(ctx: dict[str, Any], template: str, dest: str, *, name: str, user: str = "root",
                 group: str = "root", mode: str = "644") -> OperationMeta:
    """Render `template` with the host's context and put it at `dest` (idempotent by checksum)."""
    return files.put(name=name, src=io.StringIO(render(template, ctx)), dest=dest,
                     user=user, group=group, mode=mode)


def put_secret_rendered(ctx: dict[str, Any], template: str, dest: str, *, name: str, user: str = "root",
                        group: str = "root", mode: str = "600") -> OperationMeta:
    """Render a template that holds secrets and put it at `dest` through `secret_file`."""
    return secret_file(name=name, dest=dest, content=HiddenValue(render(template, ctx)), user=user,
                       group=group, mode=mode, temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))


def put_secret_local(ctx: dict[str, Any], src: str, dest: str, *, name: str, user: str, group: str,
                     mode: str = "600") -> OperationMeta:
    """Put a secret file from the control node (a TLS key) at `dest` through `secret_file`."""
    with open(src, encoding="utf-8") as handle:
        content = handle.read()
    return secret_file(name=name, dest=dest, content=HiddenValue(content), user=user, group=group,
                       mode=mode, temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))
