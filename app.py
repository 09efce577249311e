"""Entry point: `flask --app app ...` finds create_app() here."""
import gc
import os

from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.environ.get("NANBYO_INSTANCE_PATH") or None)
    from nanbyo.config import load_config
    load_config(app, test_config)

    from nanbyo.extensions import init_extensions
    init_extensions(app)

    from nanbyo import security, cli, tasks
    security.init_app(app)
    cli.init_app(app)
    tasks.init_app(app)

    from views import init_views
    init_views(app)
    if not app.testing:
        # What exists now lives as long as the process (one app per gunicorn worker or consumer): moved out of the
        # collector's reach, it is not scanned again at each full collection, which otherwise cost ~100 ms every
        # few dozen requests (bench/http.py's p95). Tests make an app per test and keep collecting them.
        gc.collect()
        gc.freeze()
    return app
