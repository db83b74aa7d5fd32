"""The WSGI entry point: ``gunicorn wsgi:app``."""

from connector import create_app

app = create_app()
