"""The postgres role's public variables and their defaults (data only: read by tsdeploy.defaults by path)."""

DEFAULTS: dict[str, object] = {
    "postgresql_port": 5432,
    "postgresql_db_name": "talentsphere",
    "postgresql_app_user": "talentsphere",
    # PGTune's "DB type": web, oltp, dw, desktop or mixed.
    "postgresql_profile": "web",
    # PGTune's storage type: ssd, hdd or san.
    "postgresql_storage": "ssd",
    # Connections kept free beyond the app's demand: superuser, monitoring, migrations, manual psql.
    "postgresql_connection_headroom": 10,
    # Extensions the app needs, created by the superuser before migrations.
    "postgresql_extensions": ["pg_trgm", "pg_stat_statements"],
}
