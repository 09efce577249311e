"""自治体 and 医療機関 screens."""
from flask_login import current_user
from wtforms import SelectField
from wtforms.validators import Optional, ValidationError

from nanbyo import jurisdiction
from nanbyo.codes import institution_code_error, municipality_code_error
from nanbyo.document_codes import SHOMAN
from nanbyo.exports import ExportColumn, coded
from nanbyo.roles import MUNICIPALITY_KIND_LABELS
from views.base import ScopedModelView


def _code_validator(check):
    def validate(form, field):
        error = check((field.data or "").strip())
        if error:
            raise ValidationError(error)
    return validate


class MunicipalityView(ScopedModelView):
    area = "municipalities"
    column_list = ["code", "name", "prefecture_no", "kind"]
    column_labels = {"code": "全国地方公共団体コード", "name": "名称", "prefecture_no": "都道府県番号", "kind": "種別",
                     "kind_code": "種別コード"}
    column_export_list = ["code", "name", "prefecture_no", "kind", "kind_code"]
    column_searchable_list = ["code", "name"]
    column_default_sort = "code"
    column_formatters = {"kind": lambda v, c, m, n: MUNICIPALITY_KIND_LABELS.get(m.kind, m.kind)}
    export_columns = {"kind": ExportColumn("kind", format=coded(MUNICIPALITY_KIND_LABELS)),
                      "kind_code": ExportColumn("kind")}
    form_columns = ["code", "name", "prefecture_no", "kind"]
    form_overrides = {"kind": SelectField}
    form_args = {
        "kind": {"choices": list(MUNICIPALITY_KIND_LABELS.items()), "label": "種別"},
        "code": {"validators": [_code_validator(municipality_code_error)]},
    }


class InstitutionView(ScopedModelView):
    area = "institutions"
    column_list = ["code", "name", "address", "municipality", "shoman_municipality", "active"]
    column_labels = {"code": "医療機関コード", "name": "医療機関名", "address": "所在地",
                     "municipality": "所管自治体（難病）", "municipality.name": "所管自治体（難病）",
                     "shoman_municipality": "所管自治体（小慢）", "shoman_municipality.name": "所管自治体（小慢）",
                     "active": "有効"}
    column_searchable_list = ["code", "name"]
    column_filters = ["active"]
    column_default_sort = "code"
    column_export_list = ["code", "name", "address", "municipality.name", "shoman_municipality.name", "active"]
    form_columns = ["code", "name", "address", "municipality", "shoman_municipality", "active"]
    form_args = {"code": {"validators": [_code_validator(institution_code_error)]},
                 "shoman_municipality": {"description": "医療機関が中核市・児童相談所設置市にあるときはその市（区）。"
                                                        "空欄のときは難病と同じ都道府県・指定都市です。",
                                         "allow_blank": True, "validators": [Optional()]},
                 "active": {"label": "有効（廃止した医療機関はチェックを外す。書類や所属が残る医療機関は削除できません）"}}

    def _jurisdiction_fields(self, form):
        """A prefecture picks the 小慢 所管 among itself and its 中核市・児童相談所設置市; for any other 自治体 both are
        fixed (a 指定都市 has both, a 中核市 or 児童相談所設置市 has 小慢 and its prefecture 難病)."""
        if "shoman_municipality" not in form or "municipality" in form:  # the operator chooses both
            return form
        own = current_user.municipality
        if own.kind != "prefecture":
            del form["shoman_municipality"]
            return form
        choices = [m for m in jurisdiction.authorities(SHOMAN)
                   if m.prefecture_no == own.prefecture_no and m.kind != "designated_city"]
        form.shoman_municipality.query_factory = lambda: choices
        return form

    def create_form(self, obj=None):
        return self._jurisdiction_fields(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._jurisdiction_fields(super().edit_form(obj))

    def on_model_change(self, form, model, is_created):
        with self.session.no_autoflush:  # the new row is not complete before its 所管 are set
            if "municipality" not in form and is_created:
                # A municipality registers institutions under itself only.
                nanbyo_authority, shoman_authority = jurisdiction.defaults_for(current_user.municipality)
                model.municipality = nanbyo_authority
                if "shoman_municipality" not in form or model.shoman_municipality is None:
                    model.shoman_municipality = shoman_authority
            if model.shoman_municipality is None:
                model.shoman_municipality = model.municipality
            problems = jurisdiction.institution_problems(model.municipality, model.shoman_municipality)
        if problems:
            raise ValidationError(problems[0])
        super().on_model_change(form, model, is_created)
