"""The `field` macro (templates/_macros.html): choice groups are lists of options whose labels take the click; every
other field keeps its one .form-control input. Without a browser: the rendered HTML, parsed."""
import lxml.html
import pytest
from flask import render_template_string
from werkzeug.datastructures import MultiDict
from wtforms import Form, RadioField, SelectField, SelectMultipleField, StringField, widgets

from nanbyo import formdefs

MACRO = "{% from '_macros.html' import field %}{{ field(f, attrs) }}"


def _render(app, f, attrs=None):
    with app.test_request_context():
        html = render_template_string(MACRO, f=f, attrs=attrs or {})
    return lxml.html.fragment_fromstring(html, create_parent="div")


def _bound(fields, formdata=None, data=None):
    return type("F", (Form,), fields)(formdata=formdata, data=data)


def _classes(element):
    return set((element.get("class") or "").split())


def _item_form(code, formdata=None, data=None):
    return _bound(formdefs.form_fields(formdefs.definition(code)), formdata=formdata, data=data)


@pytest.mark.parametrize("code, name", [("nanbyo-006", "item_parkinsonism"),  # multichoice, required
                                        ("nanbyo-006", "item_supportive"),  # multichoice
                                        ("nanbyo-002", "item_progressive"),  # yesno, required
                                        ("nanbyo-006", "item_wearing_off")])  # yesno with 「未記入」
def test_a_choice_group_is_a_fieldset_of_form_check_rows(app, code, name):
    form = _item_form(code)
    f = form[name]
    root = _render(app, f)
    group = root.get_element_by_id(f"field-{name}")
    assert group.tag == "fieldset"
    assert group.xpath("./legend")[0].text_content().strip() == f.label.text
    assert not root.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), ' form-control ')]")
    rows = group.xpath(".//div[contains(concat(' ', @class, ' '), ' form-check ')]")
    choices = [(o.data, o.label.text) for o in f]
    assert len(rows) == len(choices) >= 2
    ids = set()
    for row, (value, text) in zip(rows, choices):
        (inp,), (label,) = row.xpath("./input"), row.xpath("./label")
        assert "form-check-input" in _classes(inp) and "form-check-label" in _classes(label)
        assert inp.get("name") == name and inp.get("value") == value
        assert inp.get("type") == ("checkbox" if f.type == "SelectMultipleField" else "radio")
        assert label.get("for") == inp.get("id") and label.text_content() == text  # the label takes the click
        ids.add(inp.get("id"))
    assert len(ids) == len(rows)


def test_render_kw_goes_on_every_option_and_the_help_text_shows_under_the_group(app):
    defn = formdefs.definition("nanbyo-002")
    form = _item_form("nanbyo-002")
    regions = defn.item("umn_regions")  # required, when umn in ["1"]
    root = _render(app, form["item_umn_regions"], {"data-extra": "x"})
    inputs = root.xpath("//input")
    assert len(inputs) == len(regions.codes)
    for inp in inputs:
        assert inp.get("data-required") == "1" and inp.get("data-when-item") == "item_umn"
        assert inp.get("data-when-in") == "1" and inp.get("data-extra") == "x"
    helped = next(i for i in defn.items if i.help and i.type in ("multichoice", "yesno"))
    f = form[formdefs.field_name(helped)]
    group = _render(app, f).get_element_by_id(f"field-{f.name}")
    help_text = group.xpath("./small[contains(@class, 'form-text')]")
    assert help_text and help_text[0].text_content() == helped.help
    assert group.get("aria-describedby") == help_text[0].get("id")
    # under the options
    assert group.index(help_text[0]) > group.index(group.xpath("./div[contains(@class, 'choice-group-options')]")[0])


def test_errors_show_beside_the_group_and_mark_the_options_invalid(app):
    form = _item_form("nanbyo-006")
    f = form["item_parkinsonism"]
    f.errors = ["「パーキンソニズム」を選択してください。"]
    group = _render(app, f).get_element_by_id("field-item_parkinsonism")
    feedback = group.xpath(".//div[contains(@class, 'invalid-feedback')]")
    assert [e.text_content() for e in feedback] == f.errors
    assert "d-block" in _classes(feedback[0])  # shown although no .is-invalid input is its sibling
    assert all("is-invalid" in _classes(i) for i in group.xpath(".//input"))


def test_stored_values_prefill_the_options(app):
    defn = formdefs.definition("nanbyo-006")
    form = _item_form("nanbyo-006", data=formdefs.form_data(defn, {"parkinsonism": ["2", "4"], "wearing_off": "0"}))
    root = _render(app, form["item_parkinsonism"])
    assert [i.get("value") for i in root.xpath("//input[@checked]")] == ["2", "4"]
    root = _render(app, form["item_wearing_off"])
    assert [i.get("value") for i in root.xpath("//input[@checked]")] == ["0"]
    empty = _item_form("nanbyo-006", data=formdefs.form_data(defn, {}))
    assert [i.get("value") for i in _render(app, empty["item_wearing_off"]).xpath("//input[@checked]")] == [""]
    assert _render(app, empty["item_absolute_exclusion"]).xpath("//input[@checked]") == []


def test_other_fields_keep_their_form_control(app):
    form = _bound({
        "name": StringField("氏名", description="戸籍のとおり"),
        "sex": SelectField("性別", choices=[("", "（未選択）"), ("1", "男"), ("2", "女")]),
        "tags": SelectMultipleField("タグ", choices=[("a", "A"), ("b", "B")]),  # a multi-select, not check boxes
    })
    for name in ("name", "sex", "tags"):
        root = _render(app, form[name], {"autocomplete": "off"})
        wrapper = root.get_element_by_id(f"field-{name}")
        assert wrapper.tag == "div" and "form-group" in _classes(wrapper)
        (control,) = wrapper.xpath(f".//*[@name='{name}']")
        assert "form-control" in _classes(control) and control.get("autocomplete") == "off"
        assert wrapper.xpath("./label")[0].get("for") == control.get("id")
        assert not wrapper.xpath(".//fieldset")
    help_text = _render(app, form["name"]).xpath("//small[contains(@class, 'form-text')]")
    assert [h.text_content() for h in help_text] == ["戸籍のとおり"]
    form.name.errors = ["必須です。"]
    root = _render(app, form["name"])
    assert "is-invalid" in _classes(root.xpath("//input")[0])
    assert root.xpath("//div[@class='invalid-feedback']")[0].text_content() == "必須です。"


def test_a_radio_field_outside_the_item_forms_is_a_group_too(app):
    form = _bound({"answer": RadioField("回答", choices=[("1", "はい"), ("0", "いいえ")]),
                   "boxes": SelectMultipleField("項目", choices=[("a", "A"), ("b", "B")],
                                                widget=widgets.ListWidget(prefix_label=False),
                                                option_widget=widgets.CheckboxInput())})
    for name in ("answer", "boxes"):
        group = _render(app, form[name]).get_element_by_id(f"field-{name}")
        assert group.tag == "fieldset" and len(group.xpath(".//div[@class='form-check']")) == 2


def test_widgets_keep_the_stored_values():
    """choice: one code or "" (「（未選択）」 clears it); yesno: "" only when optional; multichoice: the checked codes."""
    for defn in formdefs.all_versions().values():
        fields = formdefs.form_fields(defn)
        for item in defn.items:
            if item.type not in formdefs.CODED_TYPES:
                continue
            name = formdefs.field_name(item)
            f = _bound({name: fields[name]})[name]
            values = [o.data for o in f]
            codes = [c for c, _ in item.codes]
            if item.type == "choice":
                assert f.type == "SelectField" and values == ["", *codes]
                assert [o.label.text for o in f][0] == formdefs.UNSELECTED[1]
            elif item.type == "yesno":
                assert f.type == "RadioField"
                assert values == (codes if item.required else [*codes, ""])
            else:
                assert f.type == "SelectMultipleField" and f.option_widget.input_type == "checkbox"
                assert values == codes
            posted = MultiDict([(name, codes[-1])] + ([(name, codes[0])] if item.type == "multichoice" else []))
            raw = formdefs.raw_from_form(defn, posted)
            expected = sorted({codes[0], codes[-1]}) if item.type == "multichoice" else codes[-1]
            got = sorted(raw[item.id]) if item.type == "multichoice" else raw[item.id]
            assert got == expected
