"""TalentSphere Deploy: the bundle's own Python (inventory, tuning, context, generation, lab, verify, CLI)."""

import pathlib

#: Repository root: templates/, roles/ and inventories/ are found from here.
ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
