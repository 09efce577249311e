"""スキャンファイル (nanbyo.files.scans)."""
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import SelectField, StringField, TextAreaField

from nanbyo.document_codes import KIND_LABELS


class ScanUploadForm(FlaskForm):
    files = MultipleFileField("スキャンファイル（PDF・TIFF・JPEG・PNG、複数選択可）",
                              render_kw={"accept": ".pdf,.tif,.tiff,.jpg,.jpeg,.png"})
    kind = SelectField("書類の種類", choices=[("", "（選択）")] + list(KIND_LABELS.items()), validate_choice=False)
    application_kind = SelectField("申請区分", choices=[], validate_choice=False)
    reception_no = StringField("受付番号")
    disease_code = StringField("疾病（わかれば: 告示番号・小慢の疾病コード）")
    reference = StringField("自治体の整理番号（任意）")


class ScanSelectionForm(FlaskForm):
    """A POST that names scans (their ids) and changes or sends them: the CSRF token is its whole form."""


class ScanReturnForm(FlaskForm):
    reason = TextAreaField("差戻しの理由（自治体に表示されます）")
