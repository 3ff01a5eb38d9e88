"""Put a role's managed files and paths on hosts; files holding secrets never reach output or --diff.

`secret_file` compares the remote sha256 with the wanted content (so an unchanged secret reports no change),
fixes owner and mode BEFORE content lands (pyinfra's sudo upload `cp`s onto the existing file, keeping its
mode), uploads through the deploy user's private 0700 temp dir, and logs only "contents hidden".

`put_checked` / `checked_files` write files that a checker validates (sudoers, sshd, nftables, nginx) so that
a file the checker rejects never lands: each changed file goes up as a candidate next to its live path
(`<dest>.tsdeploy-candidate`), the check reads the candidates, and only a passing set is renamed over the
live files. A rejected set is removed and the deploy fails naming the host, the files and the checker's words.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
import shlex
from collections.abc import Callable, Mapping, Sequence

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files
from pyinfra.operations.util.files import ensure_mode_int

from roles.common.manifest import private_temp_dir
from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

__all__ = ["CANDIDATE_SUFFIX", "Check", "CheckedFile", "candidate_path", "checked_files", "land_script",
           "private_temp_dir", "put_checked", "put_managed", "put_path", "secret_file"]


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


def put_path(ctx: Context, item: ManagedPath) -> OperationMeta | None:
    """Create a role's managed directory, or fix an existing file's owner and mode, as the entry says (nothing
    when its `when` does not hold on this host)."""
    if not item.applies(ctx):
        return None
    placed = item.placed(ctx)
    what = f"{placed.dest} ({placed.user}:{placed.group} {placed.mode}{'; ' + item.why if item.why else ''})"
    if item.directory:
        return files.directory(name=f"Create {what}", path=placed.dest, user=placed.user, group=placed.group,
                               mode=placed.mode)
    return files.file(name=f"Keep {what}", path=placed.dest, user=placed.user, group=placed.group,
                      mode=placed.mode)


# Files validated before they land ----------------------------------------------------------------------------

#: Suffix of a candidate: the new content, uploaded next to its live file (same directory, so the final `mv`
#: is an atomic rename) and removed again when its check fails.
CANDIDATE_SUFFIX = ".tsdeploy-candidate"


def candidate_path(dest: str) -> str:
    """Where the new content of `dest` waits for its check."""
    return dest + CANDIDATE_SUFFIX


@dataclasses.dataclass(frozen=True)
class Check:
    """How a set of files is validated as candidates, before any of them replaces its live file.

    + tool: what runs, for operation names and errors ("nginx -t")
    + script: given {live path: path holding the file's wanted content} for every file of the set (the
      candidate when the file changes, else the live path itself), the POSIX sh script that validates them.
      It must read the given paths instead of the live ones, never change a live file, exit non-zero when
      it rejects them and print the checker's own message (to stdout or stderr).
    + hint: how to fix a rejection, shown after the checker's message
    """

    tool: str
    script: Callable[[Mapping[str, str]], str]
    hint: str


@dataclasses.dataclass(frozen=True)
class CheckedFile:
    """One file of a `checked_files` operation; the content is hidden so the operation's arguments never show it."""

    dest: str
    content: HiddenValue
    user: str
    group: str
    mode: str
    secret: bool = False


def _sed_pattern(text: str) -> str:
    """`text` as a literal basic regular expression for sed's `s|...|...|` (| is the delimiter)."""
    return "".join("\\" + char if char in "\\.*[]^$|" else char for char in text)


def _sed_replacement(text: str) -> str:
    """`text` as a literal replacement for sed's `s|...|...|`."""
    return "".join("\\" + char if char in "\\&|" else char for char in text)


def land_script(host_name: str, paths: Mapping[str, str], check: Check) -> str:
    """The shell script that runs `check` on the candidates and renames them over their live files if it passes.

    `paths` is {live path: path holding its wanted content}: the changed files are those whose path is their
    candidate. On rejection the candidates are removed (the live files are never touched) and the script exits
    1 with the host, the files, the checker's message (candidate paths shown as their live names) and the hint.
    """
    changed = [dest for dest, path in paths.items() if path != dest]
    candidates = " ".join(shlex.quote(paths[dest]) for dest in changed)
    land = " && ".join(f"mv -f {shlex.quote(paths[dest])} {shlex.quote(dest)}" for dest in changed)
    names = ", ".join(changed)
    renames = "; ".join(f"s|{_sed_pattern(paths[dest])}|{_sed_replacement(dest)}|g" for dest in changed)
    header = (f"tsdeploy: host {host_name}: {check.tool} rejects the new {names}; nothing landed, the live "
              f"file{'s are' if len(changed) > 1 else ' is'} unchanged. {check.tool} says:")
    return "\n".join([
        f"if out=$(sh -c {shlex.quote(check.script(paths))} 2>&1); then",
        f"  {land}",
        "else",
        f"  rm -f {candidates}",
        f"  {{ printf '%s\\n' {shlex.quote(header)}",
        f"    printf '%s\\n' \"$out\" | sed {shlex.quote(renames)}",
        f"    printf '%s\\n' {shlex.quote('fix: ' + check.hint)}; }} >&2",
        "  exit 1",
        "fi",
    ])


def _up_to_date(item: CheckedFile, data: bytes) -> bool:
    """Whether the host's file already has this content (by sha256, as `secret_file`), owner and mode."""
    remote = host.get_fact(File, path=item.dest)
    return bool(remote) and remote["user"] == item.user and remote["group"] == item.group \
        and remote["mode"] == ensure_mode_int(item.mode) \
        and host.get_fact(Sha256File, path=item.dest) == hashlib.sha256(data).hexdigest()


@operation()
def checked_files(files: Sequence[CheckedFile], check: Check, temp_dir: str):
    """Write files that must pass `check` together: candidates first, checked, then renamed over the live files.

    + files: the files of the set, each with its wanted content (HiddenValue), owner and mode
    + check: the validation of the set (see `Check`); it sees the candidates of the changed files and the live
      paths of the others, so files valid only together (nginx.conf, the site, the TLS pair) pass together
    + temp_dir: a 0700 directory of the SSH user for the uploads' temporary copies

    Updates: when every file already has its content, owner and mode, nothing runs (no change). Content is
    never printed or diffed.
    """
    contents = {item.dest: item.content.unmask().encode() for item in files}
    changed = [item for item in files if not _up_to_date(item, contents[item.dest])]
    if not changed:
        host.noop(f"{', '.join(contents)} already as wanted (checked with {check.tool} when written)")
        return
    for item in changed:
        candidate = candidate_path(item.dest)
        shown = "contents hidden: contains secrets" if item.secret else "no diff shown"
        logger.info(f"{host.print_prefix}Will write {item.dest} if {check.tool} accepts it ({shown})")
        # Owner and mode before content: the sudo upload `cp`s onto the existing candidate, keeping its mode,
        # so a secret is never readable by others, not even for a moment. A leftover candidate is replaced.
        yield StringCommand("rm", "-f", candidate)
        yield StringCommand("install", "-m", item.mode, "-o", item.user, "-g", item.group, "/dev/null", candidate)
        yield FileUploadCommand(io.BytesIO(contents[item.dest]), candidate,
                                remote_temp_filename=host.get_temp_filename(candidate, temp_directory=temp_dir))
    paths = {item.dest: item.dest for item in files} | {item.dest: candidate_path(item.dest) for item in changed}
    yield StringCommand(land_script(host.name, paths, check))


def put_checked(ctx: Context, items: Sequence[ManagedFile], *, check: Check, name: str | None = None) -> OperationMeta:
    """Put a role's managed files that `check` validates: a set the checker rejects never replaces the live files.

    Content, path, owner and mode come from each entry, as for `put_managed`; all items are checked together
    (one operation), so a set valid only as a whole (a site and the certificate it names) lands as a whole.
    `did_change()` of the result says whether anything landed: reload only then. `name` describes what the
    files do; the operation's name adds how they are checked unless `name` already names `check.tool`.
    `ctx` may be a variant of the host's context (a site rendered with an upstream server marked down).
    """
    files_ = [CheckedFile(dest=placed.dest, content=HiddenValue(item.content(ctx)), user=placed.user,
                          group=placed.group, mode=placed.mode, secret=item.secret)
              for item, placed in ((item, item.placed(ctx)) for item in items)]
    what = name or "Write " + ", ".join(posixpath.basename(item.dest) for item in files_)
    if check.tool not in what:
        what += f" (checked with {check.tool} as a candidate before it replaces the live file)"
    return checked_files(
        name=what,
        files=files_, check=check, temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))
