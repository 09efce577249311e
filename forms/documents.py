"""Forms of the document screens. They only carry input: the rules are in nanbyo.documents and nanbyo.formdefs."""
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from nanbyo import formdefs
from nanbyo.document_codes import (ADMIN_FIELDS, APPLICATION_KIND_LABELS, CONSENT_LABELS, DOCUMENT_FIELDS,
                                   EXPLANATION_LABELS, INSURANCE_FIELDS, INSURANCE_KIND_LABELS, PATIENT_FIELDS,
                                   REVIEW_RESULT_LABELS, SEX_LABELS)

DATE_ATTRS = {"type": "date"}


class NewDocumentForm(FlaskForm):
    application_kind = SelectField("申請区分", choices=list(APPLICATION_KIND_LABELS.items()))
    disease = SelectField("疾病", choices=[], validate_choice=False)
    # A doctor or staff member picks one of their institutions; the operator types what the paper says.
    institution = SelectField("医療機関", choices=[], validate_choice=False)
    author = SelectField("作成者（指定医）", choices=[], validate_choice=False)
    scans = StringField("スキャンファイル No.（複数はカンマ区切り）")
    doctor_number = StringField("指定医番号")
    doctor_name = StringField("指定医氏名")
    institution_code = StringField("医療機関コード（10桁）")
    institution_name = StringField("医療機関名（未登録の医療機関のとき）")
    municipality = SelectField("提出先（患者の住所地の実施主体）", choices=[], validate_choice=False)
    explanation = RadioField("DB登録についての説明と患者（保護者）の回答", choices=list(EXPLANATION_LABELS.items()),
                             validate_choice=False)


class ContentForm(FlaskForm):
    """Dates, the patient block and (added per definition by content_form_class) the disease items; the author's
    form also shows 提出先 and the answer to 説明 (the municipality's correction form leaves them out)."""
    version = HiddenField()
    municipality = SelectField("提出先（患者の住所地の実施主体）", choices=[], validate_choice=False)
    explanation = SelectField("説明（DB登録）への患者（保護者）の回答", choices=list(EXPLANATION_LABELS.items()),
                              validate_choice=False)
    diagnosed_on = StringField(DOCUMENT_FIELDS["diagnosed_on"], render_kw=DATE_ATTRS)
    written_on = StringField(DOCUMENT_FIELDS["written_on"], render_kw=DATE_ATTRS)
    explained_on = StringField(DOCUMENT_FIELDS["explained_on"], render_kw=DATE_ATTRS)
    family_name = StringField(PATIENT_FIELDS["family_name"])
    given_name = StringField(PATIENT_FIELDS["given_name"])
    family_kana = StringField(PATIENT_FIELDS["family_kana"])
    given_kana = StringField(PATIENT_FIELDS["given_kana"])
    sex = SelectField(PATIENT_FIELDS["sex"], choices=[("", "（未選択）")] + list(SEX_LABELS.items()),
                      validate_choice=False)
    birth_date = StringField(PATIENT_FIELDS["birth_date"], render_kw=DATE_ATTRS)
    postal_code = StringField(PATIENT_FIELDS["postal_code"])
    address = StringField(PATIENT_FIELDS["address"])

    date_fields = tuple(DOCUMENT_FIELDS)
    patient_fields = tuple(PATIENT_FIELDS)


INSURANCE_FORM_FIELDS = {
    "insurance_kind": SelectField(INSURANCE_FIELDS["insurance_kind"],
                                  choices=[("", "（未選択）")] + list(INSURANCE_KIND_LABELS.items()),
                                  validate_choice=False),
    "insurer_number": StringField(INSURANCE_FIELDS["insurer_number"]),
    "insured_symbol": StringField(INSURANCE_FIELDS["insured_symbol"]),
    "insured_number": StringField(INSURANCE_FIELDS["insured_number"]),
}


def content_form_class(definition):
    """The content form of one definition: its disease items, and the insurance fields only if it asks for them."""
    fields = dict(formdefs.form_fields(definition))
    patient = tuple(PATIENT_FIELDS)
    if "insurance" in definition.patient_fields:
        fields |= INSURANCE_FORM_FIELDS
        patient += tuple(INSURANCE_FIELDS)
    fields["patient_fields"] = patient
    return type(f"ContentForm_{definition.code}_v{definition.version}", (ContentForm,), fields)


class ReviewForm(FlaskForm):
    version = HiddenField()
    reception_no = StringField(ADMIN_FIELDS["reception_no"])
    recipient_no = StringField(ADMIN_FIELDS["recipient_no"])
    application_received_on = StringField(ADMIN_FIELDS["application_received_on"], render_kw=DATE_ATTRS)
    research_consent = SelectField(ADMIN_FIELDS["research_consent"], choices=list(CONSENT_LABELS.items()),
                                   validate_choice=False)
    review_result = SelectField(ADMIN_FIELDS["review_result"],
                                choices=[("", "（未審査）")] + list(REVIEW_RESULT_LABELS.items()),
                                validate_choice=False)
    valid_from = StringField(ADMIN_FIELDS["valid_from"], render_kw=DATE_ATTRS)
    valid_until = StringField(ADMIN_FIELDS["valid_until"], render_kw=DATE_ATTRS)
    severity = StringField(ADMIN_FIELDS["severity"])
    review_note = TextAreaField(ADMIN_FIELDS["review_note"])


class LookupForm(FlaskForm):
    access_key = StringField("アクセスキー", render_kw={"autocomplete": "off", "autofocus": True,
                                                    "placeholder": "例 7KQ3WXPM（QR コードの読み取りも可）"})


class ReceiveForm(FlaskForm):
    """受付 of a looked-up document: the key again (receiving is a use of the key) and the 受付番号."""
    access_key = HiddenField()
    reception_no = StringField("受付番号", validators=[Optional(), Length(max=30, message="受付番号は30文字以内で入力してください。")],
                               description="空欄のときは自動で採番します（年度-連番）。自治体の受付簿の番号を入力することもできます。")


class PatientSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search: it changes nothing

    kana = StringField("カナ（姓名）")
    birth_date = StringField("生年月日", render_kw=DATE_ATTRS)


class ConfirmForm(FlaskForm):
    """A POST button with nothing but its CSRF token (finalize, delete)."""


__all__ = ["NewDocumentForm", "ContentForm", "content_form_class", "ReviewForm", "LookupForm", "ReceiveForm",
           "PatientSearchForm", "ConfirmForm"]


class XmlImportForm(FlaskForm):
    """XML files (or ZIPs of them) from a hospital system, taken in as drafts (nanbyo.xmlio.importer)."""
    institution = SelectField("取込先の医療機関", choices=[], validate_choice=False)
    files = MultipleFileField("XMLファイル・ZIP（複数選択可）", render_kw={"accept": ".xml,.zip"})
    all_or_nothing = BooleanField("1件でも取り込めない書類があれば、何も取り込まない")
    report_xlsx = BooleanField("結果を画面ではなく Excel（xlsx）で受け取る")
