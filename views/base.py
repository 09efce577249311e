"""Base views: every admin screen asks nanbyo.access, and scoped model views scope every URL they serve."""
import re
from datetime import datetime
from types import SimpleNamespace

from flask import abort, current_app, flash, g, has_request_context, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.helpers import get_redirect_target
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import tools as sqla_tools
from flask_admin.contrib.sqla.ajax import QueryAjaxModelLoader
from flask_admin.model.template import BaseListRowAction, DeleteRowAction, EditRowAction, ViewRowAction
from jinja2 import pass_context
from jinja2.utils import concat
from markupsafe import Markup, escape
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, union as union_
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm import defer, joinedload, selectinload
from werkzeug.utils import secure_filename
from wtforms.validators import ValidationError

from nanbyo import access, audit, database, export_jobs, exports, held_forms, integrity, sessions, tasks
from nanbyo.extensions import db
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


ROW_ID_MARK = "nanbyo-row-id"  # the row's id in a row action rendered once per list page


class PageRowAction(BaseListRowAction):
    """A list row's 👁, ✎ or 🗑; ✎ and 🗑 only on rows this user may change (a button that can never work is not
    shown). The link or form (with its CSRF token) is the same on every row but for the id: it is rendered once per
    page (an action object serves one page) and each row's id put in. Rendered per row, these took a third of a
    list page's time. With `once` false, Flask-Admin renders it for every row (the reference tests compare with)."""

    def __init__(self, action, pk_name, writable_only, once=True):
        super().__init__(action.title)
        self.action, self.pk_name, self.writable_only, self.once = action, pk_name, writable_only, once
        self._html = self._writable = None

    @pass_context
    def render_ctx(self, context, row_id, row):
        if self.writable_only:
            if self._writable is None:
                self._writable = g.get("writable_ids", frozenset())  # the page's, from ScopedModelView.render
            if int(row_id) not in self._writable:
                return ""
        if not self.once:
            return self.action.render_ctx(context, row_id, row)
        if self._html is None:
            stand_in = SimpleNamespace(**{self.pk_name: ROW_ID_MARK})
            self._html = str(self.action.render_ctx(context, ROW_ID_MARK, stand_in))
        # Flask-Admin's own rendering of the action, with an integer put in: nothing of the row's data is in it.
        return Markup(self._html.replace(ROW_ID_MARK, str(int(row_id))))  # nosec B704


ROW_MARK = re.compile(r"nanbyo-row-mark-(pk|[ca]\d+)-")  # a stand-in for a row's id, cell or action


class _StandInRowRead(Exception):
    """The row block read the row other than through get_pk_value, get_value and the row actions."""


class _StandInRow:
    """The row a list's row block is rendered with once per page: any use of it but as an argument stops that."""

    def __getattr__(self, name):
        raise _StandInRowRead(name)

    def _refuse(self, *args):
        raise _StandInRowRead()

    __str__ = __bool__ = __len__ = __iter__ = __getitem__ = __eq__ = __hash__ = _refuse


class _MarkAction(BaseListRowAction):
    def __init__(self, key):
        super().__init__()
        self.key = key

    def render(self, context, row_id, row):
        if row_id != "nanbyo-row-mark-pk-" or not isinstance(row, _StandInRow):
            raise _StandInRowRead(self.key)
        return f"nanbyo-row-mark-{self.key}-"


class PageRows:
    """A list page's rows: Flask-Admin's own list_row block (admin/model/list.html) rendered once per page with
    stand-ins for the row's id, its cells and its row actions, then each row's values put in, escaped as the
    template escapes them. Per row, the block took 0.1 ms (a context, a dozen template calls and each piece yielded
    through every enclosing block). A row block that reads the row otherwise, editable columns, or the view's
    `page_rows` false: Flask-Admin renders every row."""

    def __init__(self, view):
        self.view = view
        self._steps = None

    @pass_context
    def __call__(self, context, row):
        block = context.blocks["list_row"][-1]  # Flask-Admin's own, whatever overrides it
        if self._steps is None:
            self._steps = self._compile(context, block) if self.view.page_rows else False
        if self._steps is False:
            # The template's output, escaped by it.
            return Markup(concat(block(context)))  # nosec B704
        pk = self.view.get_pk_value(row)
        out = [self._first]
        for value, static in self._steps:
            out.append(escape(value(context, row, pk)))
            out.append(static)
        # The template's own text, and the row's values escape()d.
        return Markup("".join(out))  # nosec B704

    def _compile(self, context, block):
        """[(value of (context, row, pk), the template's text after it)], or False to render every row."""
        columns, actions = context.resolve("list_columns"), context.resolve("list_row_actions")
        get_value, view = context.resolve("get_value"), self.view
        if view.column_editable_list or get_value != view.get_list_value or \
                context.resolve("get_pk_value") != view.get_pk_value:
            return False
        keys = {name: f"c{n}" for n, (name, _label) in enumerate(columns)}

        def marked_value(row, name):
            if name not in keys:
                raise _StandInRowRead(name)
            return f"nanbyo-row-mark-{keys[name]}-"
        # The loop too: a block numbering its rows is rendered per row.
        stand_in = context.derived({"row": _StandInRow(), "loop": _StandInRow(), "get_value": marked_value,
                                    "get_pk_value": lambda row: "nanbyo-row-mark-pk-",
                                    "list_row_actions": [_MarkAction(f"a{n}") for n in range(len(actions))]})
        try:
            pieces = ROW_MARK.split(concat(block(stand_in)))
        except _StandInRowRead:
            return False
        values = {"pk": lambda context, row, pk: pk}
        for name, key in keys.items():
            values[key] = self._cell(name)
        for n, row_action in enumerate(actions):
            values[f"a{n}"] = (  # as the template calls it; PageRowAction's render_ctx takes the context
                (lambda context, row, pk, a=row_action: a.render_ctx(context, pk, row))
                if isinstance(row_action, PageRowAction) else
                (lambda context, row, pk, a=row_action: context.call(a.render_ctx, pk, row)))
        self._first = pieces[0]
        return [(values[key], static) for key, static in zip(pieces[1::2], pieces[2::2])]

    def _cell(self, name):
        """A column's value of (context, row, pk) as Flask-Admin's get_list_value gives it, the type formatter found
        once per type of value rather than by an isinstance() walk of every formatter per cell (a third of a cell's
        time). A view that changes how values are got is asked itself."""
        view = self.view
        if any(getattr(type(view), method, None) is not getattr(ModelView, method)
               for method in ("get_list_value", "_get_list_value", "_get_field_value")):
            return lambda context, row, pk: view.get_list_value(context, row, name)
        formatter, choices = view.column_formatters.get(name), view._column_choices_map.get(name)
        type_formatters, by_type = view.column_type_formatters, {}

        def value(context, row, pk):
            found = view._get_field_value(row, name) if formatter is None else formatter(view, context, row, name)
            if choices:
                return choices.get(found) or found
            kind = type(found)
            if kind not in by_type:
                by_type[kind] = next((f for t, f in type_formatters.items() if isinstance(found, t)), None)
            return found if by_type[kind] is None else by_type[kind](view, found, name)
        return value


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
    export_types = ["csv", "csv_cp932", "xlsx"]  # every row: export() below, never Flask-Admin's export_max_rows
    action_permissions: dict[str, str] = {}
    # Rows and row actions rendered once per page (PageRows, PageRowAction); False: Flask-Admin renders each row.
    page_rows = True
    list_template = "admin/nanbyo_list.html"
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
        return [PageRowAction(a, self._primary_key, isinstance(a, (EditRowAction, DeleteRowAction)), self.page_rows)
                if isinstance(a, (ViewRowAction, EditRowAction, DeleteRowAction)) else a
                for a in super().get_list_row_actions()]

    def render(self, template, **kwargs):
        if template == self.list_template:
            kwargs["page_rows"] = PageRows(self)
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

    # --- list: the page's ids from a lean query, then those rows with their related rows -----------------------
    # Above this page size (an export through get_list) Flask-Admin's own single query is used.
    LEAN_LIST_MAX_PAGE_SIZE = 500

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """Flask-Admin's list, in two statements: OFFSET over a query of ids alone (scope, search, filters, sort; no
        eager joins, so an index can serve it at any depth), then the rows of those ids with their related rows."""
        page_size = self.page_size if page_size is None else page_size
        if not execute or not page_size or page_size > self.LEAN_LIST_MAX_PAGE_SIZE:
            return super().get_list(page, sort_column, sort_desc, search, filters, execute=execute,
                                    page_size=page_size)
        count, ids = self.page_ids(page, sort_column, sort_desc, search, filters, page_size)
        if not ids:
            return count, []
        rows = self.get_query().options(*self.list_loads()).filter(self._pk_column().in_(ids)).all()
        by_id = {getattr(row, self._primary_key): row for row in rows}
        return count, [by_id[i] for i in ids if i in by_id]

    def page_ids_query(self, sort_column, sort_desc, search, filters, scope=None):
        """(count query or None, query of the ids in list order): the list's scope (or `scope`, one of its
        branches), search, filters and sort, with the primary key as the last sort key so that every page is well
        defined."""
        joins, count_joins = {}, {}
        base = self.get_query() if scope is None else super().get_query().filter(scope)
        query = base.with_entities(self._pk_column())
        count_query = None if self.simple_list_pager else self.get_count_query()
        if self._search_supported and search:
            query, count_query, joins, count_joins = self._apply_search(query, count_query, joins, count_joins,
                                                                        search)
        if filters and self._filters:
            query, count_query, joins, count_joins = self._apply_filters(query, count_query, joins, count_joins,
                                                                         filters)
        query, joins = self._apply_list_order(query, joins, sort_column, sort_desc)
        return count_query, query

    def _apply_list_order(self, query, joins, sort_column, sort_desc):
        """Flask-Admin's sort of the list, with the primary key as the last key (in the last key's direction, so
        that one index serves both) unless the sort already orders every row: each row has one place, on every
        page and in the export."""
        query, joins = self._apply_sorting(query, joins, sort_column, sort_desc)
        tiebreak = self._tiebreak(self._sort_keys(sort_column, sort_desc))
        if tiebreak:
            pk, desc = tiebreak
            query = query.order_by(pk.desc() if desc else pk)
        return query, joins

    def _tiebreak(self, sort_keys):
        """(primary key, desc) the list is ordered by after `sort_keys`, in the last key's direction; None when the
        last key alone orders every row."""
        if sort_keys and self._is_row_key(*sort_keys[-1][:2]):
            return None
        return self._pk_column(), (sort_keys[-1][2] if sort_keys else False)

    def page_ids(self, page, sort_column, sort_desc, search, filters, page_size):
        count_query, query = self.page_query(sort_column, sort_desc, search, filters, rows=((page or 0) + 1) *
                                             (page_size or self.page_size))
        count = count_query.scalar() if count_query is not None else None
        ids = [row_id for (row_id,) in self._apply_pagination(query, page, page_size)]
        return count, list(dict.fromkeys(ids))  # a join to many rows must not show a row twice

    def page_query(self, sort_column, sort_desc, search, filters, rows=None):
        """page_ids_query as the list runs it, for pages up to `rows` rows deep: for a user whose rows are few
        (access.gathers_rows), sorted after they are gathered; for a scope of several branches (a 責任者's: the
        institutions', and their own elsewhere), each branch's first `rows` ids along its own index, merged."""
        count_query, query = self.page_ids_query(sort_column, sort_desc, search, filters)
        if access.gathers_rows(current_user, self.model):
            return count_query, self._sorted_outside(query, sort_column, sort_desc)
        branches = access.read_branches(current_user, self.model)
        if len(branches) > 1 and rows:
            parts = [self.page_ids_query(sort_column, sort_desc, search, filters, scope=branch)[1].limit(rows)
                     for branch in branches]
            return count_query, self._sorted_outside(parts[0], sort_column, sort_desc, union=parts[1:])
        return count_query, query

    def _order_keys(self, sort_column, sort_desc):
        """[(expression, desc)] the list is ordered by, the primary key last (as _apply_list_order orders it)."""
        sort_keys = self._sort_keys(sort_column, sort_desc)
        keys = [(getattr(self.model, attr) if isinstance(attr, str) else attr, desc) for attr, _joins, desc in sort_keys]
        tiebreak = self._tiebreak(sort_keys)
        return keys + [tiebreak] if tiebreak else keys

    def _sorted_outside(self, query, sort_column, sort_desc, union=()):
        """The same ids in the same order, sorted outside a subquery of the rows: OFFSET 0 makes the database plan
        the subquery on its own (by the scope's indexes, without the list's order and limit); with `union`, the
        subquery is the union of these queries' rows, each keeping its order and limit (a walk along its index)."""
        keys = self._order_keys(sort_column, sort_desc)
        labels = [attr.label(f"sort_{n}") for n, (attr, _desc) in enumerate(keys)]
        if union:
            parts = [q.add_columns(*labels).subquery() for q in (query, *union)]
            rows = union_(*(select(part) for part in parts)).subquery()
        else:
            rows = query.order_by(None).add_columns(*labels).offset(0).subquery()
        return self.session.query(rows.c[self._primary_key]).order_by(
            *(rows.c[f"sort_{n}"].desc() if desc else rows.c[f"sort_{n}"] for n, (_attr, desc) in enumerate(keys)))

    # Columns of the model that no list cell reads (a document's form content): not loaded with a page's rows.
    list_deferred: tuple[str, ...] = ()

    def list_loads(self):
        """Loader options of a page's rows: Flask-Admin's joined related rows, each collection the list shows (a
        user's designations) in one more statement rather than one per row, and list_deferred left out."""
        options = [joinedload(attr) for attr in self._auto_joins]
        options += [defer(getattr(self.model, name)) for name in self.list_deferred]
        relationships = sa_inspect(self.model).relationships
        for name, _label in self._list_columns:
            if name in relationships and relationships[name].uselist and relationships[name].lazy != "dynamic":
                options.append(selectinload(getattr(self.model, name)))
        return options

    def _pk_column(self):
        return getattr(self.model, self._primary_key)

    def _sort_keys(self, sort_column, sort_desc):
        """(attribute, join path, desc) of the sort Flask-Admin applies, as _apply_sorting chooses it."""
        if sort_column is None:
            return [(attr, joins, desc) for attr, joins, desc in self._get_default_order()]
        if sort_column not in self._sortable_columns:
            return []
        fields, paths = self._sortable_columns[sort_column], self._sortable_joins.get(sort_column)
        if isinstance(fields, list):
            return [(f, p, sort_desc) for f, p in zip(fields, paths or [None] * len(fields))]
        return [(fields, paths, sort_desc)]

    def _is_row_key(self, attr, joins):
        """Whether the sort key alone orders the rows fully: a unique column of the model itself."""
        columns = getattr(getattr(attr, "property", None), "columns", None)
        if joins or not columns:
            return False
        column = columns[0]
        return column.table is self.model.__table__ and bool(column.primary_key or column.unique)

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
    # Exported columns that are not one attribute path of the model: name -> exports.ExportColumn (a label for a
    # code, several values in one cell). Any other exported name is a column ("code") or a related one
    # ("institution.code", outer-joined).
    export_columns: dict = {}

    @expose("/export/<export_type>/")
    def export(self, export_type):
        """Every row of the list as it is searched, filtered and sorted, and as this user may read it. Up to
        NANBYO_EXPORT_INLINE_ROWS rows stream in the response; more become a job written by the task queue
        (出力ファイル). Either way the log entry is committed before anything is sent."""
        if export_type not in exports.FORMATS:
            abort(404)
        source = self.export_source()
        inline = current_app.config["NANBYO_EXPORT_INLINE_ROWS"]
        query_args = list(request.args.items(multi=True))
        snapshot = exports.Snapshot(db.engine).open()
        try:
            rows = snapshot.count(source.statement, limit=inline + 1)
            if rows > inline:
                snapshot.close()
                return self._export_job(export_type, query_args, inline)
            # The count and the rows come from one snapshot: the logged number is the file's.
            audit.record("export", target_type=self.model.__tablename__,
                         data=export_jobs.asked(export_type, query_args) | {"rows": rows})
            stamp = datetime.now(exports.JST).strftime("%Y%m%d_%H%M%S")
            filename = secure_filename(f"{self.endpoint}_{stamp}.{exports.FORMATS[export_type][1]}")
            return exports.response(export_type, source, snapshot, rows, filename)
        except BaseException:
            snapshot.close()
            raise

    def _export_job(self, export_type, query_args, inline):
        job = export_jobs.create(current_user, self.endpoint, self.model.__tablename__, export_type, query_args)
        try:
            tasks.run_export(job.id)
        except Exception:
            current_app.logger.exception("export job %s could not be queued", job.id)
            export_jobs.not_queued(job.id, current_user)
        flash(f"{inline:,}件を超えるため、出力ファイル（No.{job.id}）を作成します。作成が終わると、この画面から"
              "ダウンロードできます。", "info")
        return redirect(url_for("exports.index"))

    def export_source(self):
        """The export as this request's query string asks (search, filters, sort) and as the logged-in user may read
        the list: one SELECT of the exported columns' raw values, in list order with the primary key last."""
        args = self._get_list_extra_args()
        sort = self._get_column_by_idx(args.sort)
        query, joins = self.get_query(), {}
        if self._search_supported and args.search:
            query, _count, joins, _count_joins = self._apply_search(query, None, joins, {}, args.search)
        if args.filters and self._filters:
            query, _count, joins, _count_joins = self._apply_filters(query, None, joins, {}, args.filters)
        query, joins = self._apply_list_order(query, joins, sort[0] if sort else None, args.sort_desc)
        expressions, position_of, columns, specs = [], {}, [], []
        for name, _label in self._export_columns:
            spec = self.export_columns.get(name) or exports.ExportColumn(name)
            for source in spec.sources:
                if source not in position_of:
                    expression, query, joins = self._export_expression(source, query, joins)
                    position_of[source] = len(expressions)
                    expressions.append(expression)
            columns.append((tuple(position_of[source] for source in spec.sources), spec.format))
            specs.append(spec)
        statement = query.with_entities(*expressions).statement
        return exports.ExportSource([str(label) for _name, label in self._export_columns], statement, columns,
                                    exports.cells_statement(statement, columns, specs))

    def _export_expression(self, source, query, joins):
        """(SQL expression, query, joins) of one source of an export column: a function of the model, or an
        attribute path whose related tables are outer-joined (the joins the search and filters made are reused)."""
        if callable(source):
            return source(self.model), query, joins
        attr, path = sqla_tools.get_field_with_path(self.model, source)
        if not isinstance(getattr(attr, "property", None), ColumnProperty):
            raise TypeError(f"{self.endpoint}: exported {source!r} is not a column; describe it in export_columns")
        query, joins, alias = self._apply_path_joins(query, joins, path, inner_join=False)
        return (attr if alias is None else getattr(alias, attr.key)), query, joins


def label_formatter(labels, attr):
    """A list-column formatter showing the Japanese label of a coded value."""
    return lambda v, c, m, n: labels.get(getattr(m, attr), getattr(m, attr) or "")


def flash_done(message):
    flash(message, "success")
