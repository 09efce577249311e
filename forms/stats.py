"""統計情報 (nanbyo.stats): what to count by and which documents. A GET form: it changes nothing."""
from wtforms import BooleanField, Form, SelectField, StringField

from nanbyo.document_codes import (APPLICATION_KIND_LABELS, KIND_SHORT_LABELS, REVIEW_RESULT_LABELS,
                                   STATUS_LABELS)
from nanbyo.stats.counts import DIMENSIONS

DATE_ATTRS = {"type": "date"}
ANY = [("", "（すべて）")]


def _dimension_choices(empty):
    return [("", empty)] + [(key, d.label) for key, d in DIMENSIONS.items()]


class StatsForm(Form):
    by1 = SelectField("集計項目1", choices=_dimension_choices("（選択）"), default="disease")
    by2 = SelectField("集計項目2", choices=_dimension_choices("（なし）"))
    by3 = SelectField("集計項目3", choices=_dimension_choices("（なし）"))
    fiscal_year = SelectField("年度（作成年月日）", choices=[], validate_choice=False)
    written_from = StringField("作成年月日（から）", render_kw=DATE_ATTRS)
    written_until = StringField("作成年月日（まで）", render_kw=DATE_ATTRS)
    kind = SelectField("種類", choices=ANY + list(KIND_SHORT_LABELS.items()))
    application_kind = SelectField("申請区分", choices=ANY + list(APPLICATION_KIND_LABELS.items()))
    status = SelectField("状態", choices=ANY + list(STATUS_LABELS.items()))
    review_result = SelectField("審査結果", choices=ANY + list(REVIEW_RESULT_LABELS.items()))
    municipality = SelectField("実施主体", choices=[], validate_choice=False)
    research = BooleanField("研究利用（研究利用同意が「同意あり」の書類だけを数える）")
    mask = BooleanField("患者数が10未満の行を秘匿する（自治体の出力は常に秘匿）")
