"""Render the bundle's Jinja2 templates (templates/<role>/*.j2) with StrictUndefined: the one rendering path.

Every template starts with the "managed by TalentSphere Deploy" header (a unit test checks each file); a
missing context key is an error, never an empty string in a config file.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jinja2

from tsdeploy import TEMPLATES_DIR

#: The marker every rendered file starts with (after a shebang or comment leader, depending on the format).
MANAGED_MARKER = "managed by TalentSphere Deploy"


@functools.cache
def environment(templates_dir: pathlib.Path = TEMPLATES_DIR) -> jinja2.Environment:
    """The Jinja2 environment: StrictUndefined, no autoescape (config files, not HTML), kept newlines."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str | pathlib.Path, context: dict[str, Any],
           templates_dir: pathlib.Path = TEMPLATES_DIR) -> str:
    """Render `template` (a path relative to templates/, e.g. "postgres/pg_hba.conf.j2") with `context`."""
    name = pathlib.PurePath(template).as_posix()
    return environment(templates_dir).get_template(name).render(context)
