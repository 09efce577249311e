"""Documents: list, write, finalize, print, key lookup, review, patient search — one view, every URL scoped."""
from datetime import date

from flask import Response, abort, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEqual, IntEqualFilter
from flask_login import current_user
from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from forms.documents import (ConfirmForm, LookupForm, NewDocumentForm, PatientSearchForm, ReceiveForm, ReviewForm,
                             content_form_class)
from models.accounts import Membership, User
from models.documents import Document, DocumentCorrection
from models.institutions import Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from models._types import today_jst, utcnow
from nanbyo import access, audit, database, documents, formdefs, held_forms, jurisdiction
from nanbyo.crypto import keyring
from nanbyo.document_codes import (ADMIN_FIELDS, AGREED, APPLICATION_KIND_LABELS, APPLICATION_KINDS, CONSENT_LABELS,
                                   DECLINED, DECLINED_MESSAGE, DRAFT, EXPLANATION_LABELS, FINALIZED, KIND_LABELS,
                                   KIND_SHORT_LABELS, REVIEW_RESULT_LABELS, SHOMAN, STATUS_LABELS,
                                   application_kind_label)
from nanbyo.exports import JST, ExportColumn, coded
from nanbyo.extensions import db
from nanbyo.notices import both_dates
from nanbyo.roles import DESIGNATED_DOCTOR, MUNICIPALITY_KIND_LABELS, OPERATOR_ROLES
from views.base import ScopedModelView, label_formatter
from views.xml_imports import XmlImportScreens

SEARCH_LIMIT = 100
# What a document's screens show of its related rows (header, print): loaded with it, not one statement each.
ROW_LOADS = (joinedload(Document.author), joinedload(Document.institution), joinedload(Document.municipality),
             joinedload(Document.nanbyo_disease), joinedload(Document.shoman_disease),
             joinedload(Document.explained_by))
AUTHOR_FORM_FIELDS = ("municipality", "explanation")  # on the author's form only: not the municipality's to change


def _patient_name(v, c, m, n):
    # The key ring once per page, not once per row.
    if "page_keyring" not in g:
        g.page_keyring = keyring()
    return documents.patient_name(documents.patient_of(m, g.page_keyring))


def _disease_text(kind, notification_no, nanbyo_name, shoman_code, shoman_name):
    """The document's disease as _disease_label() shows it, from the raw columns an export selects."""
    if kind == SHOMAN:
        return f"{shoman_code} {shoman_name}" if shoman_code is not None else ""
    return f"告示番号{notification_no} {nanbyo_name}" if notification_no is not None else ""


def _disease_sql(kind, notification_no, nanbyo_name, shoman_code, shoman_name):
    """_disease_text() in SQL (the export's COPY)."""
    return case((kind == SHOMAN, case((shoman_code.is_not(None), cast(shoman_code, String) + " " + shoman_name),
                                      else_="")),
                else_=case((notification_no.is_not(None), "告示番号" + cast(notification_no, String) + " "
                            + nanbyo_name), else_=""))


def _consent_text(consent):
    return CONSENT_LABELS["" if consent is None else str(int(consent))]


def _consent_sql(consent):
    return case((consent.is_(True), CONSENT_LABELS["1"]), (consent.is_(False), CONSENT_LABELS["0"]),
                else_=CONSENT_LABELS[""])


def _disease_label(doc_or_disease):
    disease = doc_or_disease.disease if isinstance(doc_or_disease, Document) else doc_or_disease
    if disease is None:
        return ""
    if isinstance(disease, NanbyoDisease):
        return f"告示番号{disease.notification_no} {disease.name_ja}"
    return f"{disease.shoman_code} {disease.name_ja}"


class DocumentView(XmlImportScreens, ScopedModelView):
    area = "documents"
    list_template = "documents/list.html"
    column_list = ["id", "kind", "application_kind", "disease", "patient", "status", "written_on", "institution",
                   "author", "municipality", "access_key"]
    column_labels = {
        "id": "No.", "kind": "種類", "application_kind": "申請区分", "disease": "疾病", "patient": "患者氏名",
        "status": "状態", "written_on": "作成年月日", "diagnosed_on": "診断年月日", "institution": "医療機関",
        "author": "作成者", "municipality": "提出先", "access_key": "アクセスキー",
        "institution.code": "医療機関コード", "author.login_id": "作成者ID", "municipality.code": "提出先コード",
        "paper_doctor_number": "指定医番号（紙の書類）",
        "disease_label": "疾病", **ADMIN_FIELDS,
    }
    column_formatters = {
        "kind": label_formatter(KIND_SHORT_LABELS, "kind"),
        "application_kind": label_formatter(APPLICATION_KIND_LABELS, "application_kind"),
        "status": label_formatter(STATUS_LABELS, "status"), "disease": lambda v, c, m, n: _disease_label(m),
        "patient": _patient_name, "institution": lambda v, c, m, n: m.institution_name,
        "author": lambda v, c, m, n: m.doctor_name, "municipality": lambda v, c, m, n: m.municipality.name,
    }
    # Every filter is on an indexed column of the document itself; no dropdown of a large table.
    column_filters = [FilterEqual(Document.status, "状態", options=list(STATUS_LABELS.items())),
                      FilterEqual(Document.kind, "種類", options=list(KIND_SHORT_LABELS.items())),
                      FilterEqual(Document.application_kind, "申請区分",
                                  options=list(APPLICATION_KIND_LABELS.items())),
                      # No. is an integer filter: PostgreSQL refuses id = 'text' (a 500 on any typed value).
                      "written_on", FilterEqual(Document.access_key, "アクセスキー"), IntEqualFilter(Document.id, "No.")]
    column_sortable_list = ["id", "written_on", "status"]
    # Newest 作成年月日 first (No. breaks ties): the same index then serves the list at any depth and the 作成年月日
    # filters; ordered by No. alone, a 作成年月日 range walked the primary key past every newer document.
    column_default_sort = [("written_on", True), ("id", True)]
    column_select_related_list = [Document.nanbyo_disease, Document.shoman_disease, Document.institution,
                                  Document.author, Document.municipality]
    list_deferred = ("items", "review_note")  # the form's content: kilobytes of JSON per row, never a list cell
    # No COUNT(*) over a million rows: the pager only offers previous/next.
    simple_list_pager = True
    can_view_details = True
    # Exports carry no patient data: identifying data leaves the system only on the doctor's print.
    column_export_list = ["id", "kind", "application_kind", "disease_label", "status", "written_on", "diagnosed_on",
                          "institution.code", "author.login_id", "municipality.code", "reception_no",
                          "recipient_no", "application_received_on", "research_consent", "review_result",
                          "valid_from", "valid_until", "severity",
                          # Added last: a municipality's own macros read the earlier columns by position.
                          "paper_doctor_number"]
    export_columns = {
        "kind": ExportColumn("kind", format=coded(KIND_SHORT_LABELS, "")),
        "application_kind": ExportColumn("application_kind", format=coded(APPLICATION_KIND_LABELS, "")),
        "status": ExportColumn("status", format=coded(STATUS_LABELS, "")),
        "review_result": ExportColumn("review_result", format=coded(REVIEW_RESULT_LABELS, "")),
        "research_consent": ExportColumn("research_consent", format=_consent_text, sql=_consent_sql),
        # A paper document's institution is the code the paper says (it has no institution account).
        "institution.code": ExportColumn("institution.code", "paper_institution_code",
                                         format=lambda code, paper_code: code or paper_code,
                                         sql=lambda code, paper_code: func.coalesce(code, paper_code)),
        "disease_label": ExportColumn("kind", "nanbyo_disease.notification_no", "nanbyo_disease.name_ja",
                                      "shoman_disease.shoman_code", "shoman_disease.name_ja",
                                      format=_disease_text, sql=_disease_sql),
    }
    extra_view_permissions = {
        "finalize_view": "finalize", "print_view": "print", "sheet_view": "print", "xml_view": "print",
        "xml_kit_view": "create", "import_xml_view": "create", "import_job_view": "create",
        "import_job_report_view": "create",
        "lookup_view": "review", "receive_view": "review", "review_view": "review", "correct_view": "review",
        "patient_search_view": "list",
    }

    # --- rows ----------------------------------------------------------------------------------------------------
    def row(self, purpose, doc_id=None):
        """The document named by ?id= if this user may use it for `purpose`; 404 otherwise (no hint it exists)."""
        doc_id = doc_id if doc_id is not None else request.args.get("id", "")
        if not str(doc_id).isdigit():
            abort(404)
        doc = self.scoped_query(purpose).options(*ROW_LOADS).filter(Document.id == int(doc_id)).one_or_none()
        if doc is None:
            abort(404)
        return doc

    def purposes(self, doc, *purposes):
        """Which of `purposes` this user may use the document for (as may()), asked in one statement."""
        checks = [case((access.row_filter(current_user, Document, p), True), else_=False) for p in purposes]
        found = db.session.execute(select(*checks).where(Document.id == doc.id)).first()
        return {p for p, allowed in zip(purposes, found or ()) if allowed}

    def not_writable_message(self, model):
        if model.status not in ("draft", "finalized"):
            return (f"この書類は{STATUS_LABELS[model.status]}のため削除・変更できません（自治体が受け付けた後は、"
                    "作成者も変更・削除できません。訂正は提出先の自治体に依頼してください）。")
        return "この書類を変更・削除できるのは作成者（下書きは作成した事務担当者）だけです。"

    def may(self, doc, purpose):
        return self.scoped_query(purpose).filter(Document.id == doc.id).first() is not None

    # --- list ----------------------------------------------------------------------------------------------------
    def render(self, template, **kwargs):
        kwargs.setdefault("may_create", self._may("create"))
        kwargs.setdefault("may_review", self._may("review"))
        kwargs.setdefault("may_import", self._may_import())
        if template == self.list_template and kwargs.get("data"):
            # The list shows patients' names: which rows this user saw is logged before they are shown.
            audit.record("document_list", target_type="document", data={"ids": [d.id for d in kwargs["data"]]})
        return super().render(template, **kwargs)

    # --- create: step 1 chooses the kind, the disease, who writes and where it goes --------------------------------
    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        kind = request.args.get("kind")
        if kind not in KIND_LABELS:
            return self.render("documents/choose_kind.html", kinds=KIND_LABELS)
        form = NewDocumentForm()
        self._fill_new_form(form, kind)
        if form.validate_on_submit():
            database.begin_write()
            doc, problems = self._new_document(form, kind)
            if not problems:
                db.session.add(doc)
                documents.set_patient(doc, {})
                db.session.flush()
                audit.record("create", target=doc, data={"kind": kind, "form": doc.form_code})
                flash("下書きを作成しました。内容を入力して保存してください。", "success")
                return redirect(url_for(".edit_view", id=doc.id))
            for p in problems:
                flash(p, "error")
        return self.render("documents/new.html", form=form, kind=kind, kind_label=KIND_LABELS[kind],
                           operator=current_user.role in OPERATOR_ROLES)

    def _fill_new_form(self, form, kind):
        form.application_kind.choices = [(k, application_kind_label(kind, k)) for k in APPLICATION_KINDS[kind]]
        form.disease.choices = disease_choices(kind, today_jst())
        form.municipality.choices = destination_choices(kind)
        user = current_user
        if user.role in OPERATOR_ROLES:
            return
        institutions = [m.institution for m in user.memberships]
        form.institution.choices = [(str(i.id), f"{i.name}（{i.code}）") for i in institutions]
        if user.role == DESIGNATED_DOCTOR:
            form.author.choices = [(str(user.id), user.name)]
        else:
            doctors = db.session.execute(
                select(User).join(Membership).where(Membership.institution_id.in_([i.id for i in institutions]),
                                                    User.role == DESIGNATED_DOCTOR)
                .order_by(User.name_kana).distinct()).scalars().all()
            form.author.choices = [(str(d.id), f"{d.name}（{d.designation_text}）") for d in doctors]
        if request.method == "GET" and institutions:
            # A starting point: the institution's 実施主体; the patient's residence decides (checked on finalize).
            form.municipality.data = str(jurisdiction.institution_authority(institutions[0], kind).id)

    def _new_document(self, form, kind):
        user = current_user
        if user.role in OPERATOR_ROLES:
            return self._new_paper_document(form, kind)
        institution = next((m.institution for m in user.memberships if str(m.institution_id) ==
                            form.institution.data), None)
        author = db.session.get(User, int(form.author.data)) if (form.author.data or "").isdigit() else None
        if author is not None and str(author.id) not in dict(form.author.choices):
            author = None
        doc, problems = self._new_draft(form, kind)
        problems += documents.authoring_problems(user, kind, form.application_kind.data, author, institution,
                                                 today_jst())
        if problems:
            return None, problems
        doc.author, doc.institution = author, institution
        return doc, []

    def _new_paper_document(self, form, kind):
        """The operator enters a paper form: its 指定医 and 医療機関 as the paper says (nanbyo.paper), made of the
        scans named (addressed to the municipality that uploaded them), or addressed as chosen."""
        from nanbyo import paper
        typed = [t for t in (form.scans.data or "").replace("、", ",").replace(" ", ",").split(",") if t]
        problems = [f"スキャンファイル No. は数字で入力してください（「{t}」）。" for t in typed if not t.isdigit()]
        scans, scan_problems = paper.scans_for([int(t) for t in typed if t.isdigit()], kind,
                                               form.application_kind.data)
        writer, writer_problems = paper.writer_problems(paper.Writer(
            form.doctor_number.data, form.doctor_name.data, form.institution_code.data, form.institution_name.data),
            kind, form.application_kind.data)
        if form.application_kind.data not in APPLICATION_KINDS[kind]:
            allowed = "・".join(application_kind_label(kind, k) for k in APPLICATION_KINDS[kind])
            problems.append(f"{KIND_LABELS[kind]}の申請区分は {allowed} のいずれかです。")
        doc, draft_problems = self._new_draft(form, kind, scans[0].municipality if scans else None)
        problems += scan_problems + [message for _field, message in writer_problems] + draft_problems
        if problems:
            return None, problems
        paper.set_writer(doc, writer)
        for scan in scans:
            scan.document = doc  # reserved for this document; データ化済 when it arrives
        return doc, []

    def _new_draft(self, form, kind, municipality=None):
        """(the draft the form describes, without its author and institution; problems): disease, 提出先 (the
        municipality given, else the one chosen), the answer to 説明."""
        user, today = current_user, today_jst()
        disease = disease_by_choice(kind, form.disease.data, today)
        if municipality is None and (form.municipality.data or "").isdigit():
            municipality = db.session.get(Municipality, int(form.municipality.data))
        if form.explanation.data == DECLINED:
            return None, [DECLINED_MESSAGE.format(form=KIND_LABELS[kind])]
        problems = []
        if form.explanation.data != AGREED:
            problems.append("DB登録について患者（保護者）に説明し、その回答を選択してください（説明は作成の前に必要です）。")
        if disease is None:
            problems.append("疾病を選択してください（作成年月日に指定されている疾病から）。")
        if not jurisdiction.is_authority(municipality, kind):
            problems.append(f"提出先を{jurisdiction.FAMILY_LABELS[kind]}の実施主体から選択してください。")
        if problems:
            return None, problems
        definition = formdefs.definition_for(kind, disease, on=today)
        doc = Document(kind=kind, application_kind=form.application_kind.data, form_code=definition.code,
                       form_version=definition.version, created_by_id=user.id, municipality=municipality,
                       status=DRAFT, written_on=today, items={}, explanation=AGREED, explained_by_id=user.id,
                       explained_at=utcnow(), explained_on=today)
        if kind == SHOMAN:
            doc.shoman_disease = disease
        else:
            doc.nanbyo_disease = disease
        return doc, []

    # --- write: the dates, the patient block and the disease items -------------------------------------------------
    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        return self._content_view(self.row("write"), "write")

    @expose("/correct/", methods=("GET", "POST"))
    def correct_view(self):
        """The municipality corrects what the doctor wrote; every change goes to the correction history."""
        return self._content_view(self.row("review"), "review")

    def _content_view(self, doc, purpose):
        definition = documents.definition_of(doc)
        form_class = content_form_class(definition)
        if request.method == "POST":
            form = form_class()
        else:
            form = self._held(form_class) or form_class(data=self._content_data(doc, definition))
            audit.record("document_view", target=doc, data={"screen": "edit" if purpose == "write" else "correct"})
        form.municipality.choices = destination_choices(doc.kind)
        here = url_for(".edit_view" if purpose == "write" else ".correct_view", id=doc.id)
        if form.validate_on_submit():
            finalize_after = request.form.get("finalize") == "1" and self._may_finalize(doc, purpose)
            problems = self._save_content(doc, form, definition, purpose)
            if problems is None:
                return redirect(here)
            if not problems:
                if finalize_after:
                    return self._finalize(doc)
                flash("保存しました。", "success")
                return redirect(here)  # 保存 stays on the form
            return self._render_content(doc, purpose, form, problems, "保存していません。次の点を修正してください。")
        return self._render_content(doc, purpose, form)

    def _may_finalize(self, doc, purpose):
        return purpose == "write" and self.may(doc, "finalize") and self._may("finalize")

    def _render_content(self, doc, purpose, form=None, problems=(), headline=""):
        """The content form; each problem beside its field, and a summary at the top that links to them."""
        definition = documents.definition_of(doc)
        if form is None:
            form = content_form_class(definition)(data=self._content_data(doc, definition))
            form.municipality.choices = destination_choices(doc.kind)
        summary = []
        for name, message in problems:
            field = form[name] if name and name in form and name not in ("csrf_token", "version") else None
            if field is not None:
                field.errors = [*field.errors, message]
            summary.append((name if field is not None else "", message))
        return self.render("documents/edit.html", doc=doc, form=form, definition=definition, purpose=purpose,
                           scan_pages=self._scan_pages(doc),
                           may_finalize=self._may_finalize(doc, purpose), header=self._header(doc),
                           error_summary=summary, error_headline=headline,
                           action=url_for(".edit_view" if purpose == "write" else ".correct_view", id=doc.id),
                           sections=[(s.title, [formdefs.field_name(i) for i in s.items]) for s in definition.sections])

    @staticmethod
    def _held(form_class):
        """The form as posted before the idle timeout ended the session, if this user had one on this page."""
        held = held_forms.take(current_user, request.full_path.rstrip("?"))
        if held is None:
            return None
        flash("ログアウトの前に入力していた内容を戻しました。まだ保存されていません。内容を確かめて保存してください。", "warning")
        return form_class(formdata=held)

    def _content_data(self, doc, definition):
        data = {"version": doc.version_id, "municipality": str(doc.municipality_id),
                "explanation": doc.explanation or ""}
        for key in ("diagnosed_on", "written_on", "explained_on"):
            value = getattr(doc, key)
            data[key] = value.isoformat() if value else ""
        data.update(documents.patient_of(doc))
        data.update(formdefs.form_data(definition, doc.items or {}))
        return data

    def _save_content(self, doc, form, definition, purpose):
        """[] when saved, a list of problems when refused, None after a conflict (already flashed)."""
        try:
            database.begin_write()
            documents.check_version(doc, form.version.data)
            raw = {name: request.form.get(name, "") for name in (*form.date_fields, *form.patient_fields)}
            if purpose == "write":  # 提出先 and the answer to 説明 are the author's; left out of a post, they stay
                raw |= {name: request.form[name] for name in AUTHOR_FORM_FIELDS if name in request.form}
            problems = documents.save_content(doc, raw, formdefs.raw_from_form(definition, request.form),
                                              current_user)
            if problems:
                db.session.rollback()
                return problems
            changed = sorted(a.key for a in db.inspect(doc).attrs if a.history.has_changes())
            audit.record("update", target=doc, data={"fields": [c for c in changed if c != "patient_index"]})
        except (documents.StaleDocument, StaleDataError):
            db.session.rollback()
            flash(documents.STALE, "error")
            audit.record("update", target=doc, result="conflict")
            return None
        return []

    # --- finalize ------------------------------------------------------------------------------------------------
    @expose("/finalize/", methods=("POST",))
    def finalize_view(self):
        doc = self.row("finalize")
        form = ConfirmForm()
        if not form.validate_on_submit():
            abort(400)
        return self._finalize(doc)

    def _finalize(self, doc):
        database.begin_write()  # the checks and the change see the document as it is under the lock
        try:
            problems = documents.finalize_if_ready(doc, current_user)
        except StaleDataError:
            db.session.rollback()
            flash(documents.STALE, "error")
            return redirect(url_for(".details_view", id=doc.id))
        if problems:
            return self._render_content(doc, "write", problems=problems,
                                        headline="確定できません（内容は保存されています）。次の点を修正してください。")
        if doc.is_paper:
            flash(f"{doc.municipality.name}に受付済みの書類として届けました（受付番号 {doc.reception_no}）。", "success")
        else:
            flash(f"確定しました。アクセスキー {doc.access_key} を印刷して患者に渡してください。", "success")
        return redirect(url_for(".details_view", id=doc.id))

    @action("finalize", "確定", "選択した下書きを確定しますか？確定するとアクセスキーが発行されます"
                                "（確定の条件を満たさない書類は下書きのままです）。")
    def action_finalize(self, ids):
        """Finalize the selected drafts this user may finalize (imported ones, say), each its own unit of work
        with its log entry; those that cannot be are named with their first problem."""
        done, sent, refused = [], [], []
        for doc_id in dict.fromkeys(str(i) for i in ids if str(i).isdigit()):
            database.begin_write()  # the checks and the change see the document as it is under the lock
            doc = self.scoped_query("finalize").filter(Document.id == int(doc_id)).one_or_none()
            if doc is None:
                db.session.rollback()
                refused.append(f"No.{doc_id}: 確定できる下書きではありません。")
                continue
            problems = documents.finalize_if_ready(doc, current_user)  # committed with its log entry, or nothing
            if problems:
                more = f"（ほか{len(problems) - 1}件）" if len(problems) > 1 else ""
                refused.append(f"No.{doc_id}: {problems[0][1]}{more}")
                continue
            (sent if doc.is_paper else done).append(doc_id)
        if done:
            flash(f"{len(done)}件を確定しました（No.{'、'.join(done)}）。アクセスキーを印刷して患者に渡してください。",
                  "success")
        if sent:
            flash(f"紙の書類 {len(sent)}件を自治体の受付へ送りました（No.{'、'.join(sent)}）。", "success")
        for message in refused:
            flash(f"確定できません: {message}", "error")

    # --- details -------------------------------------------------------------------------------------------------
    @expose("/details/")
    def details_view(self):
        doc = self.row("read")
        definition = documents.definition_of(doc)
        # The entry goes on a connection of its own (nothing of this session is committed or expired by it).
        audit.record("document_view", target=doc)
        history = doc.corrections.options(joinedload(DocumentCorrection.user)).all()
        corrections = [(c, {k: documents.correction_text(doc, c.field, v)
                            for k, v in documents.correction_values(c).items()}) for c in history]
        asked = [p for p, screen in (("write", "edit"), ("write", "delete"), ("finalize", "finalize"),
                                     ("review", "review")) if self._may(screen)]
        allowed = self.purposes(doc, *dict.fromkeys(asked)) if asked else set()
        return self.render(
            "documents/details.html", doc=doc, header=self._header(doc), scan_pages=self._scan_pages(doc),
            patient_rows=self._patient_rows(doc),
            sections=formdefs.display_sections(definition, doc.items or {}),
            admin_rows=self._admin_rows(doc), corrections=corrections, confirm_form=ConfirmForm(),
            may_write=self._may("edit") and "write" in allowed,
            may_delete=self._may("delete") and "write" in allowed,
            may_finalize=self._may("finalize") and "finalize" in allowed,
            may_review=self._may("review") and "review" in allowed,
            may_print=self._may("print"))

    @staticmethod
    def _patient_rows(doc):
        fields = documents.patient_fields(documents.definition_of(doc))
        return documents.patient_display(documents.patient_of(doc), fields)

    def _header(self, doc):
        def d(value):
            return both_dates(value) if value else ""
        explained = EXPLANATION_LABELS.get(doc.explanation, "未記録")
        if doc.explained_by is not None:
            explained += f"（記録: {doc.explained_by.name}、{doc.explained_at.astimezone(JST):%Y-%m-%d %H:%M}）"
        return [("書類", f"{KIND_LABELS[doc.kind]}（{application_kind_label(doc.kind, doc.application_kind)}）"),
                ("疾病", _disease_label(doc)), ("状態", STATUS_LABELS[doc.status]),
                ("アクセスキー", doc.access_key or ("（紙の書類: 発行しません）" if doc.is_paper else "（確定時に発行）")),
                ("作成者", f"{doc.doctor_name}（指定医番号 {doc.paper_doctor_number}・紙の書類）" if doc.is_paper
                 else doc.author.name),
                ("医療機関", f"{doc.institution_name}（{doc.institution_code}）"),
                ("提出先", doc.municipality.name), ("作成年月日", d(doc.written_on)),
                ("診断年月日", d(doc.diagnosed_on)), ("説明日（DB登録の説明）", d(doc.explained_on)),
                ("説明への回答", explained), ("様式", f"{documents.definition_of(doc).title}（{doc.form_code} 第{doc.form_version}版）")]

    def _admin_rows(self, doc):
        def text(key):
            value = getattr(doc, key)
            if key == "review_result":
                return REVIEW_RESULT_LABELS.get(value, "")
            if key == "research_consent":
                return CONSENT_LABELS["" if value is None else str(int(value))]
            if isinstance(value, date):
                return both_dates(value)
            return value or ""
        return [(label, text(key)) for key, label in ADMIN_FIELDS.items()]

    # --- print ---------------------------------------------------------------------------------------------------
    def _printable(self, doc):
        from nanbyo.document_print import PrintableDocument
        designation = f"指定医番号 {doc.paper_doctor_number}" if doc.is_paper else next(
            (str(d) for d in doc.author.designations
             if d.kind in documents.doctor_kinds_for(doc.kind, doc.application_kind)), "")
        return PrintableDocument(
            form_title=KIND_LABELS[doc.kind], kind=doc.kind,
            application_kind_label=application_kind_label(doc.kind, doc.application_kind),
            disease_label=_disease_label(doc), access_key=doc.access_key or "", written_on=doc.written_on,
            diagnosed_on=doc.diagnosed_on, patient_rows=self._patient_rows(doc),
            sections=formdefs.display_sections(documents.definition_of(doc), doc.items or {}),
            doctor_name=doc.doctor_name, doctor_designation=designation, institution_name=doc.institution_name,
            institution_code=doc.institution_code,
            institution_address="" if doc.is_paper else doc.institution.address,
            destination_name=doc.municipality.name, explained_on=doc.explained_on, document_uid=doc.uid)

    def _pdf(self, body, name):
        return Response(body, mimetype="application/pdf",
                        headers={"Content-Disposition": f"inline; filename={name}", "Cache-Control": "no-store"})

    @expose("/print/")
    def print_view(self):
        from nanbyo.document_print import render_document_pdf
        doc = self.row("read")
        audit.record("document_print", target=doc, data={"sheet": "document"})
        return self._pdf(render_document_pdf(self._printable(doc)), f"document_{doc.id}.pdf")

    @expose("/sheet/")
    def sheet_view(self):
        from nanbyo.document_print import render_key_sheet_pdf
        doc = self.row("read")
        if not doc.access_key:
            flash("アクセスキーは確定時に発行されます。先に確定してください。", "error")
            return redirect(url_for(".details_view", id=doc.id))
        audit.record("document_print", target=doc, data={"sheet": "key"})
        return self._pdf(render_key_sheet_pdf(self._printable(doc)), f"access_key_{doc.id}.pdf")

    @expose("/xml/")
    def xml_view(self):
        """The document as XML of the published contract (xsd/documents-1.xsd), for whoever may print it."""
        from nanbyo.xmlio.export import document_xml
        doc = self.row("read")
        audit.record("document_xml", target=doc)
        return Response(document_xml(doc), mimetype="application/xml",
                        headers={"Content-Disposition": f"attachment; filename=document_{doc.id}.xml",
                                 "Cache-Control": "no-store"})

    @expose("/import-xml/", methods=("GET", "POST"))
    def import_xml_view(self):
        """Documents from a hospital system's XML, as drafts: a designated doctor's own, or a staff member's for
        their institution's doctors (nanbyo.xmlio.importer)."""
        memberships = {str(m.institution_id): m.institution for m in current_user.memberships}
        return self.import_screen("documents/import_xml.html", memberships,
                                  [(key, f"{i.name}（{i.code}）") for key, i in memberships.items()])

    def _may_import(self):
        """XML取込 is for those who write documents at an institution: designated doctors and institution staff."""
        from nanbyo.xmlio.import_jobs import may_import
        return self._may("create") and may_import(current_user)

    @expose("/import-xml/<int:job_id>/")
    def import_job_view(self, job_id):
        return self.job_screen(job_id, ".import_xml_view", "XML取込の画面へ戻る")

    @expose("/import-xml/<int:job_id>/report.xlsx")
    def import_job_report_view(self, job_id):
        return self.job_report(job_id)

    @expose("/xml-kit/")
    def xml_kit_view(self):
        """The vendor package (XML連携資料: schemas, record definitions, code tables, samples, rules) for those who
        write documents, to hand to their hospital system's vendor. It holds no one's data."""
        from nanbyo.xmlio import vendor_kit
        return Response(vendor_kit.build(), mimetype="application/zip",
                        headers={"Content-Disposition": f"attachment; filename={vendor_kit.FILE_NAME}"})

    # --- municipality --------------------------------------------------------------------------------------------
    @expose("/lookup/", methods=("GET", "POST"))
    def lookup_view(self):
        """Looking a key up shows the document read-only; receiving it is a separate, confirmed action."""
        form = LookupForm()
        if form.validate_on_submit():
            result = documents.lookup_key(current_user, form.access_key.data)
            if result.document is not None and result.document.status != FINALIZED:
                flash(result.message, "info")
                return redirect(url_for(".details_view", id=result.document.id))
            if result.document is not None:
                return self._lookup_result(result.document, result.message, ReceiveForm(
                    formdata=None, access_key=result.document.access_key))
            flash(result.message, "error")
            form.access_key.data = ""
        return self.render("documents/lookup.html", form=form)

    def _lookup_result(self, doc, message, receive_form):
        definition = documents.definition_of(doc)
        receive_form.reception_no.render_kw = {"placeholder": documents.next_reception_no(current_user.municipality)}
        flash(message, "info")
        return self.render("documents/details.html", doc=doc, header=self._header(doc), lookup=True,
                           receive_form=receive_form, patient_rows=self._patient_rows(doc),
                           sections=formdefs.display_sections(definition, doc.items or {}), admin_rows=[],
                           corrections=[], confirm_form=ConfirmForm(), may_write=False, may_delete=False,
                           may_finalize=False, may_review=False, may_print=False)

    @expose("/receive/", methods=("POST",))
    def receive_view(self):
        form = ReceiveForm()
        if not form.validate_on_submit():
            for errors in form.errors.values():
                for error in errors:
                    flash(error, "error")
            return redirect(url_for(".lookup_view"))
        result = documents.lookup_key(current_user, form.access_key.data, receive=True,
                                      reception_no=form.reception_no.data)
        if result.document is None:
            flash(result.message, "error")
            return redirect(url_for(".lookup_view"))
        flash(result.message, "success")
        return redirect(url_for(".details_view", id=result.document.id))

    @expose("/review/", methods=("GET", "POST"))
    def review_view(self):
        doc = self.row("review")
        form = ReviewForm() if request.method == "POST" else (self._held(ReviewForm) or
                                                               ReviewForm(data=self._review_data(doc)))
        if form.validate_on_submit():
            try:
                database.begin_write()
                documents.check_version(doc, form.version.data)
                problems = documents.save_review(doc, request.form, current_user,
                                                 complete=request.form.get("complete") == "1")
                if problems:
                    db.session.rollback()
                    for p in problems:
                        flash(p, "error")
                else:
                    status = doc.status
                    audit.record("document_review", target=doc, data={"status": status})
                    flash("登録完了にしました。" if status == "completed" else "保存しました。", "success")
                    return redirect(url_for(".details_view", id=doc.id))
            except (documents.StaleDocument, StaleDataError):
                db.session.rollback()
                flash(documents.STALE, "error")
                audit.record("document_review", target=doc, result="conflict")
                return redirect(url_for(".review_view", id=doc.id))
        return self.render("documents/review.html", doc=doc, form=form, header=self._header(doc),
                           scan_pages=self._scan_pages(doc))

    @staticmethod
    def _scan_pages(doc):
        """A paper document's scans, shown beside it to whoever may see them (its municipality, the operator)."""
        from nanbyo.files import scans
        return scans.pages_of(current_user, doc.id) if doc.is_paper else []

    def _review_data(self, doc):
        data = {"version": doc.version_id}
        for key in ADMIN_FIELDS:
            value = getattr(doc, key)
            if key == "research_consent":
                value = "" if value is None else str(int(value))
            elif isinstance(value, date):
                value = value.isoformat()
            data[key] = value or ""
        return data

    # --- patient search ------------------------------------------------------------------------------------------
    @expose("/patient-search/")
    def patient_search_view(self):
        form = PatientSearchForm(request.args)
        results, searched = [], False
        if request.args:
            problems = []
            birth = documents.parse_date(form.birth_date.data, "生年月日", problems)
            if not form.kana.data or birth is None:
                flash("カナと生年月日の両方を入力してください（完全一致で検索します）。", "error")
            elif problems:
                flash(problems[0][1], "error")
            else:
                searched = True
                results = self.get_query().options(
                    joinedload(Document.institution), joinedload(Document.author),
                    joinedload(Document.municipality)).filter(
                    documents.patient_criterion(form.kana.data, birth)).order_by(
                    Document.id.desc()).limit(SEARCH_LIMIT).all()
                audit.record("patient_search", target_type="document",
                             data={"found": len(results), "ids": [doc.id for doc in results]})
        rows = [(doc, documents.patient_name(documents.patient_of(doc)), _disease_label(doc)) for doc in results]
        return self.render("documents/patient_search.html", form=form, rows=rows, searched=searched,
                           limit=SEARCH_LIMIT, status_labels=STATUS_LABELS, kind_labels=KIND_SHORT_LABELS)

    # --- delete --------------------------------------------------------------------------------------------------
    def on_model_delete(self, model):
        audit.record("delete", target=model, commit=False, data={"kind": model.kind, "status": model.status})


def destination_choices(kind):
    """The 実施主体 of the family, as 提出先 choices: 都道府県・指定都市 (and for 小慢 中核市・児童相談所設置市)."""
    return [(str(m.id), f"{m.name}（{MUNICIPALITY_KIND_LABELS[m.kind]}）") for m in jurisdiction.authorities(kind)]


def disease_choices(kind, on):
    """<optgroup>s: 小慢 by 疾患群 (大分類), 難病 by 疾患区分 (only the 指定難病 in force on `on`), in master order."""
    grouped = {}
    if kind == SHOMAN:
        groups = {g.group_id: g.name_ja for g in db.session.execute(select(ShomanGroup)).scalars()}
        for d in db.session.execute(select(ShomanDisease).order_by(ShomanDisease.shoman_code)).scalars():
            top = d.group_id.split("-")[0]
            label = f"{top} {groups.get(top, '')} › {d.group_id} {groups.get(d.group_id, '')}"
            grouped.setdefault(label, []).append((str(d.id), f"{d.shoman_code} {d.name_ja}"))
    else:
        categories = {c.id: c.name_ja for c in db.session.execute(select(NanbyoCategory)).scalars()}
        for d in db.session.execute(select(NanbyoDisease).where(documents.in_force(on)).order_by(
                NanbyoDisease.notification_no, NanbyoDisease.is_subtype, NanbyoDisease.id)).scalars():
            label = categories.get(d.category_id, "その他")
            text = f"　{d.name_ja}（病型）" if d.is_subtype else f"{d.notification_no} {d.name_ja}"
            grouped.setdefault(label, []).append((str(d.id), text))
    return {"": [("", "（選択してください）")], **grouped}


def disease_by_choice(kind, value, on):
    if not (value or "").isdigit():
        return None
    if kind == SHOMAN:
        return db.session.get(ShomanDisease, int(value))
    return db.session.execute(select(NanbyoDisease).where(NanbyoDisease.id == int(value), documents.in_force(on))).scalar()

