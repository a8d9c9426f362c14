"""The dashboard: a dependency-free single-page app served at ``/`` (assets under ``/ui/``).

It talks only to the public REST API (``/v1/...``) with the user's API key, so it owns
no server logic beyond serving its own static files; see ``docs/dashboard.md``.
"""
