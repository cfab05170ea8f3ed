"""The WSGI app gunicorn serves (``connect_app.wsgi:app``); a misconfiguration is one clear
line on stderr and exit status 78, not a traceback (``connect_app.startup``)."""

from connect_app import create_app
from connect_app.startup import clear_startup_errors

with clear_startup_errors("web"):
    app = create_app()
