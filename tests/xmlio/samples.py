"""Valid documents of every form as XML of the contract, for the tests: the vendor package's own samples
(nanbyo.xmlio.vendor_kit), with changes where a test needs them."""
from dataclasses import replace

from nanbyo.xmlio import vendor_kit
from nanbyo.xmlio.writer import file_bytes

WRITTEN_ON = vendor_kit.SAMPLE_DAY


def disease_codes():
    """(kind, disease code) for every form."""
    return vendor_kit.sample_diseases()


def content(kind, code, **changes):
    return replace(vendor_kit.sample_content(kind, code), **changes)


def element(kind, code, **changes):
    return vendor_kit.sample_element(kind, code, content(kind, code, **changes))


def xml(*elements):
    return file_bytes(list(elements))
