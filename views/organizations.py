"""自治体 and 医療機関 screens."""
from flask_login import current_user
from wtforms import SelectField
from wtforms.validators import ValidationError

from nanbyo.codes import institution_code_error, municipality_code_error
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
    column_labels = {"code": "全国地方公共団体コード", "name": "名称", "prefecture_no": "都道府県番号", "kind": "種別"}
    column_searchable_list = ["code", "name"]
    column_default_sort = "code"
    column_formatters = {"kind": lambda v, c, m, n: MUNICIPALITY_KIND_LABELS.get(m.kind, m.kind)}
    form_columns = ["code", "name", "prefecture_no", "kind"]
    form_overrides = {"kind": SelectField}
    form_args = {
        "kind": {"choices": list(MUNICIPALITY_KIND_LABELS.items()), "label": "種別"},
        "code": {"validators": [_code_validator(municipality_code_error)]},
    }


class InstitutionView(ScopedModelView):
    area = "institutions"
    column_list = ["code", "name", "address", "municipality", "active"]
    column_labels = {"code": "医療機関コード", "name": "医療機関名", "address": "所在地", "municipality": "所管自治体",
                     "municipality.name": "所管自治体", "active": "有効"}
    column_searchable_list = ["code", "name"]
    column_filters = ["active"]
    column_default_sort = "code"
    column_export_list = ["code", "name", "address", "municipality.name", "active"]
    form_columns = ["code", "name", "address", "municipality", "active"]
    form_args = {"code": {"validators": [_code_validator(institution_code_error)]},
                 "active": {"label": "有効（廃止した医療機関はチェックを外す。書類や所属が残る医療機関は削除できません）"}}

    def on_model_change(self, form, model, is_created):
        if "municipality" not in form:
            # A municipality registers institutions under itself only.
            model.municipality_id = current_user.municipality_id
        if model.municipality_id is None and model.municipality is None:
            raise ValidationError("所管自治体を選択してください。")
        super().on_model_change(form, model, is_created)
