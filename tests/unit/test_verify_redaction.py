"""Secrets never reach a verify report: the drift diff and the reports mask them."""

from __future__ import annotations

import pathlib

from tsdeploy import verify

SECRET = "s3cr3t-Pa55w0rd-value"
OLD_SECRET = "older-unknown-value-42"


def test_drift_diff_names_the_file_and_shows_the_changed_line_with_the_secret_masked():
    expected = f"FLASK_ENV=production\nDATABASE_URL=postgresql://app:{SECRET}@10.0.0.1/db\n"
    actual = f"FLASK_ENV=development\nDATABASE_URL=postgresql://app:{SECRET}@10.0.0.1/db\n"
    diff = verify.redacted_diff("/etc/talentsphere/env", expected, actual, [SECRET])
    assert "/etc/talentsphere/env (rendered by the deploy)" in diff
    assert "-FLASK_ENV=production" in diff and "+FLASK_ENV=development" in diff
    assert SECRET not in diff


def test_a_secret_the_verifier_does_not_know_is_masked_by_its_shape():
    expected = f"SECRET_KEY={SECRET}\nREDIS_URL=redis://app:{SECRET}@10.0.0.2:6379/0\n"
    actual = f"SECRET_KEY={OLD_SECRET}\nREDIS_URL=redis://app:{OLD_SECRET}@10.0.0.2:6379/0\n"
    diff = verify.redacted_diff("/etc/talentsphere/env", expected, actual, [SECRET])
    assert OLD_SECRET not in diff and SECRET not in diff
    assert "+SECRET_KEY=***" in diff and "redis://app:***@10.0.0.2" in diff


def test_redis_acl_passwords_and_hashes_and_scram_verifiers_are_masked():
    text = ("user app on >plaintextpw ~ts:* +@all -@dangerous\n"
            f"user admin on #{'ab' * 32} +@all\n"
            "rolpassword SCRAM-SHA-256$4096:salt$stored:server\n")
    masked = verify.redact(text, [])
    assert "plaintextpw" not in masked and "ab" * 32 not in masked and "stored:server" not in masked
    assert "~ts:* +@all -@dangerous" in masked


def test_reports_are_scrubbed_and_the_leaked_secret_names_returned(tmp_path: pathlib.Path):
    (tmp_path / "junit.xml").write_text(f"<testcase><failure message='{SECRET}'/></testcase>")
    (tmp_path / "summary.md").write_text("| ok |\n")
    leaked = verify.redact_reports(tmp_path, {"redis_app_password": SECRET, "app_secret_key": "unused-value"})
    assert leaked == ["redis_app_password"]
    assert SECRET not in (tmp_path / "junit.xml").read_text()


def test_secret_values_are_the_inventorys_secret_settings_only():
    class LoadedInventory:
        hostvars = {"db1": {"postgresql_app_password": "pw1", "tls_key_file": "/x/key.pem",
                            "app_secret_key": "sk", "postgresql_db_name": "talentsphere"}}

    assert verify.secret_values(LoadedInventory()) == {"postgresql_app_password": "pw1", "app_secret_key": "sk"}
