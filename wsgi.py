"""The web app for any WSGI server: `gunicorn wsgi:app` (config from $MAINLAND_CONFIG).

Run the worker beside it as its own process (`mainland worker`); see docs/operations.md.
"""

from inbox.web import create_app

app = create_app()
