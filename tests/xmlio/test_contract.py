"""The published document-level schema (xsd/documents-1.xsd) is what nanbyo.xmlio.contract builds from the codes the
application uses, and it accepts a whole document and refuses what the contract does not allow."""
from lxml import etree

from nanbyo.document_codes import APPLICATION_KIND_LABELS, SEX_LABELS
from nanbyo.xmlio import contract

VALID = """<documents version="1"><document>
<kind>nanbyo</kind><application_kind>new</application_kind><disease>6</disease>
<written_on>2026-12-01</written_on><diagnosed_on>2026-11-20</diagnosed_on>
<explanation answer="agreed" on="2026-12-01"/>
<doctor number="13-N-0101" name="見本 太郎"/><institution code="1310000017"/>
<patient><family_name>山田</family_name><given_name>花子</given_name><sex>2</sex><birth_date>1980-04-01</birth_date>
<insurance_kind>national</insurance_kind></patient>
<items form="nanbyo-006" version="2"><item id="onset_ym" type="yearmonth">2024-03</item></items>
</document></documents>"""


def errors(xml):
    schema = contract.document_schema()
    schema.validate(etree.fromstring(xml.encode()))
    return [e.message for e in schema.error_log]


def test_the_committed_schema_is_the_built_one():
    assert (contract.XSD_DIRECTORY / "documents-1.xsd").read_text(encoding="utf-8") == contract.build_schema()


def test_codes_come_from_the_application():
    text = contract.build_schema()
    for code in [*APPLICATION_KIND_LABELS, *SEX_LABELS]:
        assert f'value="{code}"' in text


def test_a_whole_document_is_valid():
    assert errors(VALID) == []


def test_what_the_contract_refuses():
    cases = {
        "version": VALID.replace('version="1"', 'version="2"', 1),
        "kind": VALID.replace("<kind>nanbyo</kind>", "<kind>other</kind>"),
        "application_kind": VALID.replace(">new<", ">renew<"),
        "disease": VALID.replace("<disease>6</disease>", "<disease>1_1_1</disease>"),
        "written_on": VALID.replace("2026-12-01</written_on>", "2026/12/01</written_on>"),
        "explanation": VALID.replace('answer="agreed"', 'answer="yes"'),
        "doctor number": VALID.replace('number="13-N-0101"', 'number="13 N 0101"'),
        "institution": VALID.replace('code="1310000017"', 'code="131000001"'),
        "sex": VALID.replace("<sex>2</sex>", "<sex>F</sex>"),
        "patient text": VALID.replace("山田", "山" * 201),
        "unknown patient field": VALID.replace("<sex>2</sex>", "<sex>2</sex><blood_type>A</blood_type>"),
        "missing items": VALID.replace('<items form="nanbyo-006" version="2"><item id="onset_ym" '
                                       'type="yearmonth">2024-03</item></items>', ""),
        "no documents": '<documents version="1"></documents>',
    }
    for what, xml in cases.items():
        assert errors(xml), what


def test_the_schema_is_read_from_local_files_only():
    """Its include (form-items-1.xsd) resolves beside it; nothing is fetched."""
    assert contract.document_schema() is contract.document_schema()
    assert '<xs:include schemaLocation="form-items-1.xsd"/>' in contract.build_schema()
