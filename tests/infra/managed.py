"""The files the deploy manages: tsdeploy.manifest, the one list the roles, `generate vm` and the drift check use.

Re-exported here for the suite's modules; tests/unit/test_verify_catalogue.py checks that every template in
templates/ is listed, so a new managed file cannot silently escape the drift check.
"""

from tsdeploy.manifest import MANAGED_FILES, ManagedFile, files_for

__all__ = ["MANAGED_FILES", "ManagedFile", "files_for"]
