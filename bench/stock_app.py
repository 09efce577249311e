"""The application with Flask-Admin's stock list and export behaviour put back: the baseline of bench/http.py.

Only for the benchmark (gunicorn 'stock_app:create_app()' with bench/ on PYTHONPATH). Access rules, scoping and
templates stay the application's; what changes is how a list page and an export are computed:
- lists: Flask-Admin's ModelView.get_list (OFFSET over the query with its eager loads) with the COUNT(*) pager;
- exports: Flask-Admin's _export_data() (ORM objects, at most export_max_rows) rendered in memory, raw values.
"""
import importlib
import pkgutil
from datetime import datetime

from flask import Response, abort
from flask_admin.contrib.sqla import ModelView
from werkzeug.utils import secure_filename

from app import create_app as create_nanbyo_app
from nanbyo import exports
from views.base import ScopedModelView


def stock_export(self, export_type):
    if export_type not in exports.FORMATS:
        abort(404)
    _count, rows = self._export_data()
    columns = self._export_columns
    body = exports.render(export_type, [str(label) for _name, label in columns],
                          ([ModelView.get_export_value(self, row, name) for name, _label in columns] for row in rows))
    mimetype, ext = exports.FORMATS[export_type]
    filename = secure_filename(f"{self.endpoint}_{datetime.now():%Y%m%d_%H%M%S}.{ext}")
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"})


def _views(cls):
    yield cls
    for sub in cls.__subclasses__():
        yield from _views(sub)


def create_app():
    import views
    for module in pkgutil.iter_modules(views.__path__):
        importlib.import_module(f"views.{module.name}")
    for view in _views(ScopedModelView):
        if "get_list" in view.__dict__:
            view.get_list = ModelView.get_list
        if "export" in view.__dict__:
            view.export = stock_export
        view.simple_list_pager = False
        view.export_max_rows = 100_000
    return create_nanbyo_app()
