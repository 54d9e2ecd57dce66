"""``CSRFProtect`` as MLflow's basic-auth app uses it, failing closed: see the package docstring."""

from __future__ import annotations

from typing import Any

from flask import abort


class CSRFProtect:
    """Registers an empty ``csrf_token()`` for templates; :meth:`protect` always refuses (403)."""

    def __init__(self, app: Any = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        app.jinja_env.globals["csrf_token"] = lambda: ""

    def protect(self) -> None:
        abort(403, "the browser sign-up form is disabled on this server: the admin creates users")
