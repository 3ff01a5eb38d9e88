"""Configure nginx: hardened nginx.conf, the TLS certificate and key, the TalentSphere site, checked together with
`nginx -t` as candidates before any of them replaces its live file; reload only when something landed.

Contents, paths, owners and modes of the files come from the role's manifest (shared with `generate vm` and
the verify drift check).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pyinfra.operations import files, systemd

from roles.common.files import Check, put_checked, put_path
from roles.nginx import acme, manifest
from tsdeploy.rolespec import Context

ROOT = "/etc/nginx"


def _pattern(text: str) -> str:
    return "".join("\\" + char if char in "\\.*[]^$|" else char for char in text)


def nginx_check(*, root: str = ROOT, links: Mapping[str, str] | None = None) -> Check:
    """`nginx -t` of the configuration as it will be, on a scratch copy of `root`, never on the live files.

    The script copies `root` (symlinks kept) into a 0700 temp dir, puts each candidate at its relative place,
    adds `links` ({link: target}, the links the role creates after the files land, such as the enabled site),
    points symlinks and absolute paths into `root` at the copy, and runs `nginx -t -c <copy>/nginx.conf`.
    A file outside `root` (a TLS pair elsewhere) is checked where its candidate lies: the copies name the
    candidate instead of the live path. Messages name the live paths again; the temp dir is always removed.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        lines = ['tmp=$(mktemp -d) || exit 1', "trap 'rm -rf \"$tmp\"' EXIT",
                 f'cp -a {q(root)}/. "$tmp/" || exit 1',
                 # A leftover candidate must not be included by a wildcard (sites-enabled/*).
                 'find "$tmp" -name "*.tsdeploy-candidate" -exec rm -f {} +']
        outside = []
        for dest, path in paths.items():
            if dest.startswith(root + "/"):
                copy = '"$tmp"/' + q(dest[len(root) + 1:])
                lines.append(f'mkdir -p "$(dirname {copy})" && cp -p {q(path)} {copy} || exit 1')
            elif path != dest:
                outside.append((dest, path))
        for link, target in (links or {}).items():
            copy = '"$tmp"/' + q(link[len(root) + 1:])
            lines.append(f'mkdir -p "$(dirname {copy})" && ln -sfn {q(target)} {copy} || exit 1')
        lines += [
            # Links into the live tree (sites-enabled -> sites-available) must read the copy.
            'find "$tmp" -type l | while IFS= read -r link; do',
            '  target=$(readlink "$link")',
            f'  case "$target" in {q(root)}/*) ln -sfn "$tmp/${{target#{q(root)}/}}" "$link";; esac',
            'done',
        ]
        renames = [f"s|{_pattern(root)}/|$tmp/|g"] + [f"s|{_pattern(dest)}|{path}|g" for dest, path in outside]
        lines += [
            # Absolute paths in the copies (includes, the TLS pair) point into the copy (regular files only:
            # grep -r does not follow the symlinks to Debian's module snippets outside the tree).
            f'grep -rlZ -e {q(root + "/")} {" ".join("-e " + q(dest) for dest, _ in outside)} "$tmp" '
            f'| xargs -0 -r sed -i "{"; ".join(renames)}" || exit 1',
            'out=$(nginx -t -q -c "$tmp/nginx.conf" 2>&1); rc=$?',
            f'[ -z "$out" ] || printf \'%s\\n\' "$out" | sed "s|$tmp/|{root}/|g"',
            'exit "$rc"',
        ]
        return "\n".join(lines)

    return Check(tool="nginx -t", script=script,
                 hint="correct the file the message names (templates/nginx/*.j2, or the PEM files tls_cert_file "
                      "and tls_key_file point at) and deploy again")


#: The check of the role's files: the site counts as enabled even before its link exists (first deploy).
CHECK = nginx_check(links={manifest.SITE_ENABLED: manifest.SITE.path})
#: The same check for a set of the site alone (roles/nginx/drain.py): the other files are read where they live.
check_site = CHECK


def apply(ctx: Context) -> None:
    put_path(ctx, manifest.TLS)
    acme_mode = manifest.RENEW_HOOK.applies_to(ctx)
    if acme_mode:
        put_path(ctx, manifest.ACME_CHALLENGES)
        acme.before_site(ctx)
    # nginx.conf, the TLS pair and the site are one set: a site naming a new certificate is valid only with it.
    # (With an ACME CA the pair is certbot's, linked by acme.py, not the inventory's files.)
    items = [manifest.NGINX_CONF, manifest.TLS_CERT, manifest.TLS_KEY, manifest.SITE]
    landed = put_checked(ctx, [item for item in items if item.applies_to(ctx)],
                         check=CHECK,
                         name="Write the hardened nginx.conf (server_tokens off, 0640), the TLS certificate chain "
                              "and private key (root 0600), and the TalentSphere site (TLS, headers, limit_req, "
                              "upstream of every app host)")
    # Enabled only after the site landed (the check already saw it enabled), so the link never dangles.
    enabled = files.link(name="Enable the TalentSphere site", path=manifest.SITE_ENABLED, target=manifest.SITE.path)

    def changed() -> bool:
        return landed.did_change() or enabled.did_change()

    started = systemd.service(name="Start and enable nginx", service=manifest.SERVICE, running=True, enabled=True)
    systemd.service(name="Reload nginx because its configuration changed", service=manifest.SERVICE,
                    reloaded=True, _if=lambda: changed() and not started.did_change())
    if acme_mode:
        # After the reload: the CA fetches the challenge through the site's port-80 location.
        acme.after_site(ctx)
