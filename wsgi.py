"""The WSGI entry point: ``gunicorn wsgi:app``."""

from connector import create_app
from connector.process import settle

app = create_app()
settle()
