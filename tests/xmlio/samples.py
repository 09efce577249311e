"""Valid documents of every form, as XML of the contract (for the check tool's tests and the hostile corpus)."""
from datetime import date, timedelta

from nanbyo import formdefs
from nanbyo.content_rules import Content, patient_fields
from nanbyo.demo import sample_values
from nanbyo.xmlio import check
from nanbyo.xmlio.writer import document_element, file_bytes

WRITTEN_ON = date(2026, 11, 2)


def disease_codes():
    """(kind, disease code) for every form: each specific form's first disease, and for each general form a disease
    without a form of its own."""
    out = []
    mapped = set()
    for definition in formdefs.load_definitions().values():
        if not definition.general:
            out.append((definition.kind, str(definition.diseases[0])))
            mapped |= {(definition.kind, str(d)) for d in definition.diseases}
    diseases = check._diseases()
    for kind in formdefs.KINDS:
        out.append(next(key for key in sorted(diseases) if key[0] == kind and key not in mapped))
    return out


def patient(kind, definition):
    values = {"family_name": "山田", "given_name": "花子", "family_kana": "ヤマダ", "given_kana": "ハナコ", "sex": "2",
              "birth_date": "2015-04-01" if kind == "shoman" else "1980-04-01", "postal_code": "1600023",
              "address": "東京都新宿区西新宿二丁目8番1号", "insurance_kind": "national", "insurer_number": "123456",
              "insured_symbol": "記号１", "insured_number": "1234"}
    return {key: value for key, value in values.items() if key in patient_fields(definition)}


def content(kind, code, **changes):
    disease = check._diseases()[(kind, code)]
    definition = formdefs.definition_for(kind, check._disease_key(kind, disease), on=WRITTEN_ON)
    items, problems = formdefs.validate(definition, sample_values(definition), finalize=True)
    assert problems == [], (definition.code, problems)
    fields = dict(kind=kind, application_kind="new", definition=definition, disease=disease,
                  diagnosed_on=WRITTEN_ON - timedelta(days=30), written_on=WRITTEN_ON, explained_on=WRITTEN_ON,
                  explanation="agreed", patient=patient(kind, definition), items=items)
    return Content(**(fields | changes))


def element(kind, code, **changes):
    return document_element(content(kind, code, **changes), disease_code=code, doctor_number="13-N-0101",
                            doctor_name="見本 太郎", institution_code="1310000017")


def xml(*elements):
    return file_bytes(list(elements))
