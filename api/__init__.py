"""vihub's HTTP API: the FastAPI app (``api.app.create_app``), one package per resource.

Each resource package has ``router.py`` (thin endpoints), ``service.py`` (the work, no
HTTP types) and ``schemas.py`` (request/response models). SQL lives in ``store``.
"""
