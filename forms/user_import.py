"""Forms of the user import screen: the file upload and the individual issuance (one doctor, 個別発行).

The individual form only carries the values: they are checked by nanbyo.userfile's rules for a file row (the same
plan_table), not by validators of their own. Only the 指定申請の受付番号, which a file does not have, is checked here.
"""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from nanbyo import userfile
from nanbyo.roles import DOCTOR_KIND_LABELS

APPLICATION_REF_MAX = 40


class UploadForm(FlaskForm):
    file = FileField("医療機関ユーザデータファイル（.xlsx または .csv）")


def _normalised(value):
    return userfile.normalise(value) if value is not None else value


def _printable(form, field):
    if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in field.data or "") or userfile.has_gaiji(field.data or ""):
        raise ValidationError("指定申請の受付番号に使えない文字が含まれています。")


def _label(key):
    return userfile.COLUMN_BY_KEY[key].label


class IndividualForm(FlaskForm):
    """One doctor, as one row of a 医療機関ユーザデータファイル (勤務区分 is always 主たる勤務先)."""
    application_ref = StringField("指定申請の受付番号", filters=[_normalised], validators=[
        DataRequired("指定申請の受付番号を入力してください。"),
        Length(max=APPLICATION_REF_MAX, message=f"指定申請の受付番号は{APPLICATION_REF_MAX}文字以内で入力してください。"),
        _printable])
    doctor_kind = SelectField(_label("doctor_kind"), validate_choice=False,
                              choices=[("", "選択してください")] + [(label, label) for label in DOCTOR_KIND_LABELS.values()])
    doctor_number = StringField(_label("doctor_number"))
    institution_code = StringField(_label("institution_code"))
    institution_name = StringField(f"{_label('institution_name')}（未登録の医療機関のときに必須）")
    department = StringField(_label("department"))
    family_name = StringField(_label("family_name"))
    given_name = StringField(_label("given_name"))
    family_kana = StringField(_label("family_kana"))
    given_kana = StringField(_label("given_kana"))
    phone = StringField(_label("phone"))
    email = StringField(_label("email"))
    valid_from = StringField(_label("valid_from"), render_kw={"type": "date"})
    valid_until = StringField(_label("valid_until"), render_kw={"type": "date"})

    ROW_FIELDS = ("doctor_kind", "doctor_number", "institution_code", "institution_name", "department", "family_name",
                  "given_name", "family_kana", "given_kana", "phone", "email", "valid_from", "valid_until")

    def row_values(self) -> dict:
        """The values by column key, for userfile.form_table."""
        return {key: getattr(self, key).data or "" for key in self.ROW_FIELDS}
