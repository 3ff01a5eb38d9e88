"""Ship the deploy's non-Python parts inside the tsdeploy package, so that an installed tsdeploy can deploy.

pyproject.toml declares the packages (`tsdeploy`, and `roles`, which pyinfra imports from deploy.py). A
wheel also needs what a checkout keeps beside them: the pyinfra entry points, the templates, the verify
suite, the example inventory and the app's source (the release is built from it). `build_py` copies those
into `tsdeploy/_bundle/`, where `tsdeploy.ROOT` finds them. An editable install reads them from the
checkout instead, so nothing is copied then.
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

#: Paths of the checkout, relative to it, that an installed tsdeploy needs (tsdeploy.ROOT mirrors them).
BUNDLE = ("deploy.py", "templates", "inventories/ansible.py", "inventories/production.example", "tests/infra",
          "app/pyproject.toml", "app/requirements.txt", "app/requirements.lock", "app/README.md", "app/src")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        checkout = pathlib.Path(__file__).resolve().parent
        bundle = pathlib.Path(self.build_lib) / "tsdeploy" / "_bundle"
        for relative in BUNDLE:
            source, target = checkout / relative, bundle / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=IGNORED, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildPyWithBundle})
