"""TalentSphere Deploy: the bundle's own Python (inventory, tuning, context, generation, lab, verify, CLI)."""

import pathlib

_PACKAGE = pathlib.Path(__file__).resolve().parent
#: Where deploy.py, templates/, inventories/, tests/infra/ and app/ are: the checkout this package lives in,
#: or, for a non-editable install, the copy shipped inside the package (see setup.py).
ROOT = _PACKAGE / "_bundle" if (_PACKAGE / "_bundle" / "deploy.py").is_file() else _PACKAGE.parent
TEMPLATES_DIR = ROOT / "templates"
