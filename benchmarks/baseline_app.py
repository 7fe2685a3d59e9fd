"""The floor the benchmark measures the service against: Flask parsing the same form post.

No validation, no database, no signing: it reads the posted form, checks that an email is
there and answers 303 the way the service answers a plain form post, on the same gunicorn
settings (benchmarks/run.py starts it with capture/gunicorn_conf.py).
"""

from __future__ import annotations

from flask import Flask, Response, redirect, request


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @app.post("/submit")
    def submit() -> Response | tuple[str, int]:
        if not request.form.get("email"):
            return "Enter your email address.", 422
        return redirect("/thanks/baseline", 303)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app
