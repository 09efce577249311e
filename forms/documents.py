"""Forms of the document screens. They only carry input: the rules are in nanbyo.documents and nanbyo.formdefs."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField

from nanbyo import formdefs
from nanbyo.document_codes import (ADMIN_FIELDS, APPLICATION_KIND_LABELS, CONSENT_LABELS, DOCUMENT_FIELDS,
                                   INSURANCE_KIND_LABELS, PATIENT_FIELDS, REVIEW_RESULT_LABELS, SEX_LABELS)

DATE_ATTRS = {"type": "date"}


class NewDocumentForm(FlaskForm):
    application_kind = SelectField("申請区分", choices=list(APPLICATION_KIND_LABELS.items()))
    disease = SelectField("疾病", choices=[], validate_choice=False)
    # A doctor or staff member picks one of their institutions; the operator types the code from the paper.
    institution = SelectField("医療機関", choices=[], validate_choice=False)
    institution_code = StringField("医療機関コード（10桁）")
    author = SelectField("作成者（指定医）", choices=[], validate_choice=False)
    author_number = StringField("作成者の指定医番号またはログインID")
    municipality = SelectField("提出先の自治体", choices=[], validate_choice=False)


class ContentForm(FlaskForm):
    """Dates, the patient block and (added per definition by content_form_class) the disease items."""
    version = HiddenField()
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
    insurance_kind = SelectField(PATIENT_FIELDS["insurance_kind"],
                                 choices=[("", "（未選択）")] + list(INSURANCE_KIND_LABELS.items()),
                                 validate_choice=False)
    insurer_number = StringField(PATIENT_FIELDS["insurer_number"])
    insured_symbol = StringField(PATIENT_FIELDS["insured_symbol"])
    insured_number = StringField(PATIENT_FIELDS["insured_number"])

    date_fields = tuple(DOCUMENT_FIELDS)
    patient_fields = tuple(PATIENT_FIELDS)


def content_form_class(definition):
    return type(f"ContentForm_{definition.code}", (ContentForm,), formdefs.form_fields(definition))


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


class PatientSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search: it changes nothing

    kana = StringField("カナ（姓名）")
    birth_date = StringField("生年月日", render_kw=DATE_ATTRS)


class ConfirmForm(FlaskForm):
    """A POST button with nothing but its CSRF token (finalize, delete)."""


__all__ = ["NewDocumentForm", "ContentForm", "content_form_class", "ReviewForm", "LookupForm", "PatientSearchForm",
           "ConfirmForm"]
