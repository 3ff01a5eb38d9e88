"""sshd hardening (ssh-baseline) in a drop-in, checked with `sshd -t` as a candidate before it lands and reloaded
only when it landed; never locks us out."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping

from pyinfra.operations import systemd

from roles.common import manifest
from roles.common.files import Check, put_checked, put_path
from tsdeploy.rolespec import Context

MAIN = "/etc/ssh/sshd_config"
DROP_IN_DIR = posixpath.dirname(manifest.SSHD_DROP_IN.path)


def sshd_check(*, main: str = MAIN, drop_in_dir: str = DROP_IN_DIR, keeps_key_for: str | None = None) -> Check:
    """`sshd -t` of the whole configuration as it will be, without touching the live files.

    sshd has no option to check one drop-in, so the script builds a scratch copy: `main` (or its candidate)
    with every `drop_in_dir/` pointed at a scratch copy of that directory, in which the candidates replace
    their live drop-ins; `sshd -t -f` reads the scratch main. Its messages name the live paths again.
    + keeps_key_for: also require that this user keeps a non-empty authorized_keys: sshd reloads only if the
      deploying user can still log in with a key (passwords are off).
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        lines = ['tmp=$(mktemp -d) || exit 1', "trap 'rm -rf \"$tmp\"' EXIT",
                 f'cp -a {q(drop_in_dir)} "$tmp/d" || exit 1',
                 # A leftover candidate must not count as a drop-in of its own.
                 'find "$tmp/d" -name "*.tsdeploy-candidate" -exec rm -f {} +']
        main_source = main
        for dest, path in paths.items():
            if dest == main:
                main_source = path
            elif posixpath.dirname(dest) == drop_in_dir:
                lines.append(f'cp -p {q(path)} "$tmp/d/{posixpath.basename(dest)}" || exit 1')
            else:
                raise ValueError(f"sshd_check: {dest} is neither {main} nor a drop-in of {drop_in_dir}")
        pattern = drop_in_dir.replace("\\", "\\\\").replace(".", "\\.").replace("|", "\\|")
        lines += [
            f'sed "s|{pattern}/|$tmp/d/|g" {q(main_source)} > "$tmp/sshd_config" || exit 1',
            'out=$(sshd -t -f "$tmp/sshd_config" 2>&1); rc=$?',
            f'[ -z "$out" ] || printf \'%s\\n\' "$out" | sed "s|$tmp/d/|{drop_in_dir}/|g; s|$tmp/sshd_config|{main}|g"',
            '[ "$rc" -eq 0 ] || exit "$rc"',
        ]
        if keeps_key_for:
            home = f'$(getent passwd {q(keeps_key_for)} | cut -d: -f6)'
            lines.append(f'test -s "{home}/.ssh/authorized_keys" || {{ echo "{keeps_key_for} has no authorized key '
                         f'in {home}/.ssh/authorized_keys: with passwords off it could not log in"; exit 1; }}')
        return "\n".join(lines)

    return Check(tool="sshd -t", script=script,
                 hint="correct templates/common/sshd_hardening.conf.j2 (or the file named above) and deploy again")


def apply(ctx: Context) -> None:
    user = ctx["common"]["deploy_user"]
    drop_in = put_checked(ctx, [manifest.SSHD_DROP_IN], check=sshd_check(keeps_key_for=user),
                          name=f"Harden sshd: keys only, no root login, no forwarding (ssh-baseline); {user} keeps "
                               "an authorized key")
    put_path(ctx, manifest.SSHD_CONFIG)
    # The drop-in lands only when `sshd -t` accepts the whole configuration with it AND the deploy user still
    # has a key to log in with: a bad drop-in fails the deploy, never locks the deploying user out.
    systemd.service(name="Reload sshd to apply the hardening", service="ssh", reloaded=True,
                    _if=drop_in.did_change)
