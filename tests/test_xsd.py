"""The published XSDs describe what the application writes."""
from pathlib import Path

import pytest
from lxml import etree

from nanbyo import formdefs
from nanbyo.demo import sample_values

XSD = Path(__file__).resolve().parent.parent / "xsd"


def schema(name):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(XSD / name), parser))


@pytest.mark.parametrize("code", sorted(formdefs.load_definitions()))
def test_every_form_s_items_xml_is_valid_and_reads_back(code):
    definition = formdefs.definition(code)
    values = sample_values(definition)
    element = formdefs.to_xml(definition, values)
    items = schema("form-items-1.xsd")
    items.assertValid(element)
    raw, problems = formdefs.raw_from_xml(definition, element)
    assert problems == [] and formdefs.validate(definition, raw, finalize=True) == (values, [])


def test_schema_refuses_what_the_reader_would_not_understand():
    items = schema("form-items-1.xsd")
    bad = [b'<items form="nanbyo-002"><item id="a" type="text">x</item></items>',  # no version
           b'<items form="nanbyo-002" version="1"><item id="a" type="script">x</item></items>',
           b'<items form="nanbyo-002" version="1"><item id="a" type="text"/><item id="a" type="text"/></items>']
    for xml in bad:
        assert not items.validate(etree.fromstring(xml)), xml
