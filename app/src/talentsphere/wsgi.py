"""WSGI entry point: ``gunicorn talentsphere.wsgi:app``."""

from talentsphere import create_app

app = create_app()
