"""Base views: every admin screen asks nanbyo.access, and scoped model views scope every URL they serve."""
from datetime import datetime

from flask import Response, abort, flash, g, has_request_context, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.helpers import get_redirect_target
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.ajax import QueryAjaxModelLoader
from flask_admin.model.template import BaseListRowAction, DeleteRowAction, EditRowAction
from jinja2 import pass_context
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import inspect as sa_inspect
from werkzeug.utils import secure_filename
from wtforms.validators import ValidationError

from nanbyo import access, audit, database, exports, held_forms, integrity, sessions
from nanbyo.roles import ROLE_LABELS

# Flask-Admin view method -> the permission it needs. A method missing here is refused.
VIEW_PERMISSIONS = {
    "index_view": "list", "details_view": "details", "create_view": "create", "edit_view": "edit",
    "delete_view": "delete", "export": "export", "ajax_update": "edit", "action_view": None,
    "ajax_lookup": None,
}
WRITE_VIEWS = {"edit_view", "delete_view", "ajax_update"}


TIMED_OUT = "一定時間操作がなかったためログアウトしました。もう一度ログインしてください。"
HELD = "入力中の内容はまだ保存されていません。ログインし直すと、入力していた内容をこの画面に戻します。"


def _login_redirect():
    """To the login page, back here afterwards. After an idle timeout the page says so, and a form posted meanwhile
    is kept for the same user (nanbyo.held_forms), so the typing is not lost."""
    timed_out = sessions.timed_out_user_id()
    back = request.full_path.rstrip("?") if request.method == "GET" or timed_out else None
    if timed_out:
        flash(TIMED_OUT, "info")
        if request.method == "POST" and request.endpoint in HOLDABLE_ENDPOINTS:
            if held_forms.hold(timed_out, back, request.form):
                flash(HELD, "info")
    return redirect(url_for("auth.login", next=back))


# The long forms whose typing is kept across a re-login after the idle timeout.
HOLDABLE_ENDPOINTS = {"document.edit_view", "document.correct_view", "document.review_view"}


class ProtectedBaseView(BaseView):
    """A non-model admin screen guarded by one access area."""
    area: str = ""
    permission = "use"

    def is_accessible(self):
        return current_user.is_authenticated and access.allowed(current_user, self.area, self.permission)

    def inaccessible_callback(self, name, **kwargs):
        return _login_redirect() if not current_user.is_authenticated else abort(403)


class HomeView(AdminIndexView):
    def is_accessible(self):
        return current_user.is_authenticated

    def inaccessible_callback(self, name, **kwargs):
        return _login_redirect()

    @expose("/")
    def index(self):
        return self.render("admin/home.html", role_label=ROLE_LABELS.get(current_user.role, ""),
                           may_documents=access.allowed(current_user, "documents", "list"),
                           may_write=access.allowed(current_user, "documents", "create"),
                           may_review=access.allowed(current_user, "documents", "review"),
                           may_import=access.allowed(current_user, "user_import", "use"),
                           may_manage=access.allowed(current_user, "institution_users", "use"))


class ScopedAjaxLoader(QueryAjaxModelLoader):
    """Ajax choices limited to the rows the user may read: no dropdown leaks other institutions."""

    def get_query(self):
        return super().get_query().filter(access.row_filter(current_user, self.model, "read"))

    def get_one(self, pk):
        # A posted id outside the user's rows resolves to nothing, so it cannot be attached to a form.
        with self.session.no_autoflush:
            return self.get_query().filter(getattr(self.model, self.pk) == pk).one_or_none()


class IfWritable(BaseListRowAction):
    """A list row's ✎ or 🗑, shown only on rows this user may change: a button that can never work is not shown."""

    def __init__(self, action):
        super().__init__(action.title)
        self.action = action

    @pass_context
    def render_ctx(self, context, row_id, row):
        return self.action.render_ctx(context, row_id, row) if int(row_id) in g.get("writable_ids", ()) else ""


class AdminForm(FlaskForm):
    """FlaskForm (CSRF) that remembers the edited object as Flask-Admin's own BaseForm does.

    Flask-Admin's Unique validator compares the row it finds with `form._obj`; without it, saving an edit that keeps
    a unique value (an institution's code, a user's login ID) fails with 「既に存在します」.
    """

    def __init__(self, *args, **kwargs):
        self._obj = kwargs.get("obj", args[1] if len(args) > 1 else None)
        super().__init__(*args, **kwargs)


class ScopedModelView(ModelView):
    """A model view whose list, count, single-row, action, export and ajax queries all pass nanbyo.access."""
    area: str = ""
    form_base_class = AdminForm
    page_size = 50
    can_set_page_size = True
    export_types = ["csv", "csv_cp932", "xlsx"]
    export_max_rows = 100_000
    action_permissions: dict[str, str] = {}
    # Permissions of a view's own @expose methods (method name -> permission); any other method is refused.
    extra_view_permissions: dict[str, str] = {}

    # Permissions follow the logged-in user, per request. At set-up (no request) Flask-Admin builds everything.
    def _may(self, permission):
        if not has_request_context():
            return True
        return current_user.is_authenticated and access.allowed(current_user, self.area, permission)

    can_create = property(lambda self: self._may("create"))
    can_edit = property(lambda self: self._may("edit"))
    can_delete = property(lambda self: self._may("delete"))
    can_view_details = property(lambda self: self._may("details"))
    can_export = property(lambda self: self._may("export"))

    def is_accessible(self):
        return current_user.is_authenticated and bool(access.permissions(current_user, self.area))

    def inaccessible_callback(self, name, **kwargs):
        return _login_redirect() if not current_user.is_authenticated else abort(403)

    def _handle_view(self, name, **kwargs):
        if not current_user.is_authenticated:
            return _login_redirect()
        permissions = VIEW_PERMISSIONS | self.extra_view_permissions
        if name not in permissions:
            abort(403)
        permission = permissions[name]
        if permission and not self._may(permission):
            abort(403)
        if name == "ajax_lookup" and not (self._may("create") or self._may("edit")):
            abort(403)
        return super()._handle_view(name, **kwargs)

    def is_action_allowed(self, name):
        permission = self.action_permissions.get(name, name)
        return self._may(permission) and super().is_action_allowed(name)

    def get_list_row_actions(self):
        return [IfWritable(a) if isinstance(a, (EditRowAction, DeleteRowAction)) else a
                for a in super().get_list_row_actions()]

    def render(self, template, **kwargs):
        if template == self.list_template and kwargs.get("data"):
            ids = [row.id for row in kwargs["data"]]
            g.writable_ids = {row_id for (row_id,) in self.scoped_query("write").with_entities(self.model.id)
                              .filter(self.model.id.in_(ids))}
        return super().render(template, **kwargs)

    def not_writable_message(self, model):
        """Why a row this user can see cannot be changed or deleted by them."""
        return "この記録を変更・削除する権限がありません。"

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        """Flask-Admin says 「レコードが存在しません」 for a row it will not delete; say why instead."""
        form = self.delete_form()
        if self.validate_form(form) and str(form.id.data).isdigit():
            readable = self.scoped_query("read").filter(self.model.id == int(form.id.data)).one_or_none()
            writable = self.scoped_query("write").filter(self.model.id == int(form.id.data)).first()
            if readable is not None and writable is None:
                flash(self.not_writable_message(readable), "error")
                return redirect(get_redirect_target() or self.get_url(".index_view"))
        return super().delete_view()

    # --- scoping -------------------------------------------------------------------------------------------------
    def scoped_query(self, purpose="read"):
        return super().get_query().filter(access.row_filter(current_user, self.model, purpose))

    def get_query(self):
        return self.scoped_query("read")

    def get_count_query(self):
        return super().get_count_query().filter(access.row_filter(current_user, self.model, "read"))

    def get_one(self, id):
        try:
            pk = int(id)
        except (TypeError, ValueError):
            return None
        purpose = "write" if request.endpoint and request.endpoint.rsplit(".", 1)[-1] in WRITE_VIEWS else "read"
        return self.scoped_query(purpose).filter(self.model.id == pk).one_or_none()

    def rows_for_action(self, ids, purpose):
        pks = [int(i) for i in ids if str(i).isdigit()]
        return self.scoped_query(purpose).filter(self.model.id.in_(pks)).all()

    @action("delete", "削除", "選択したレコードを削除しますか？")
    def action_delete(self, ids):
        """Flask-Admin's own mass delete reads get_query() (the readable rows); only writable rows may go."""
        deleted = sum(1 for row in self.rows_for_action(ids, "write") if self.delete_model(row))
        flash(f"{deleted}件を削除しました。", "success" if deleted else "error")

    # --- writes: each is one unit of work (nanbyo.database) with its log entry ---------------------------------
    def create_model(self, form):
        database.begin_write()
        return super().create_model(form)

    def update_model(self, form, model):
        database.begin_write()
        # Read the row again under the lock, with the relations the form sets: the log then names only the fields
        # that really change.
        self.session.refresh(model)
        for relation in sa_inspect(model).mapper.relationships:
            if relation.key in form:
                getattr(model, relation.key)
        return super().update_model(form, model)

    def delete_model(self, model):
        database.begin_write()
        # Under the lock the row may have moved out of this user's reach (e.g. a document received meanwhile).
        if self.scoped_query("write").filter(self.model.id == model.id).first() is None:
            flash("削除できません（権限の範囲外か、状態が変わっています）。", "error")
            return False
        problem = self.delete_problem(model)
        if problem:
            flash(problem, "error")
            return False
        return self.remove_model(model)

    def delete_problem(self, model):
        """Why this row may not be deleted (Japanese), or None."""
        return integrity.delete_problem(model)

    def remove_model(self, model):
        """The deletion itself, inside delete_model's unit of work: Flask-Admin's, logged by on_model_delete."""
        return super().delete_model(model)

    def _create_ajax_loader(self, name, options):
        attr = getattr(self.model, name)
        remote_model = attr.property.mapper.class_
        return ScopedAjaxLoader(name, self.session, remote_model, **options)

    # --- forms: fields this user may not set are removed, so they cannot be mass-assigned -----------------------
    def _strip_fields(self, form):
        for name in access.hidden_fields(current_user, self.model):
            if name in form:
                del form[name]
        return form

    def create_form(self, obj=None):
        return self._strip_fields(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._strip_fields(super().edit_form(obj))

    # --- operation log: the entry joins the change's transaction, which Flask-Admin then commits ---------------
    def on_model_change(self, form, model, is_created):
        state = sa_inspect(model)
        changed = sorted(a.key for a in state.attrs if a.history.has_changes())
        # Whatever the form said, the saved row must still be one this user may write.
        self.session.flush()
        if self.scoped_query("write").filter(self.model.id == model.id).first() is None:
            raise ValidationError("権限の範囲外になるため保存できません。")
        audit.record("create" if is_created else "update", target=model, data={"fields": changed}, commit=False)

    def on_model_delete(self, model):
        audit.record("delete", target=model, commit=False)

    # --- export --------------------------------------------------------------------------------------------------
    @expose("/export/<export_type>/")
    def export(self, export_type):
        if export_type not in exports.FORMATS:
            abort(404)
        _count, rows = self._export_data()
        headers = [str(label) for _name, label in self._export_columns]
        values = ([self.get_export_value(row, name) for name, _label in self._export_columns] for row in rows)
        body = exports.render(export_type, headers, values)
        audit.record("export", target_type=self.model.__tablename__,
                     data={"format": export_type, "rows": len(rows)})
        mimetype, ext = exports.FORMATS[export_type]
        stamp = datetime.now(exports.JST).strftime("%Y%m%d_%H%M%S")
        filename = secure_filename(f"{self.endpoint}_{stamp}.{ext}")
        return Response(body, mimetype=mimetype,
                        headers={"Content-Disposition": f"attachment; filename={filename}"})

    def get_export_value(self, model, name):
        # Raw values: exports.cell_text() does the formatting and the neutralising.
        value = model
        for part in str(name).split("."):
            value = getattr(value, part, None) if value is not None else None
        return value


def label_formatter(labels, attr):
    """A list-column formatter showing the Japanese label of a coded value."""
    return lambda v, c, m, n: labels.get(getattr(m, attr), getattr(m, attr) or "")


def flash_done(message):
    flash(message, "success")
