"""Form definitions as data (formdefs/*.json): loading, mapping to diseases, validation, display, WTForms, XML."""
import copy
import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from lxml import etree
from werkzeug.datastructures import MultiDict
from wtforms import Form

from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import formdefs
from nanbyo.formdefs import (DefinitionError, definition, definition_for, display_sections, form_data, form_fields,
                             load_definitions, raw_from_form, raw_from_xml, to_xml, validate)

ROOT = Path(__file__).resolve().parent.parent
FORMDEFS = ROOT / "formdefs"
MASTERS = ROOT / "data" / "masters"


def _csv(name):
    with (MASTERS / name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _specific(kind):
    return [d for d in load_definitions().values() if d.kind == kind and not d.general]


def _shipped_copy(tmp_path, name="defs"):
    """A directory holding every shipped definition, to add files to."""
    directory = tmp_path / name
    shutil.copytree(FORMDEFS, directory)
    return directory


def _write(directory, data, name=None):
    path = directory / (name or f"{data['code']}.json")
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _minimal(code="nanbyo-900", numbers=(900,), items=None):
    return {
        "code": code, "kind": "nanbyo", "title": "テスト疾病", "version": 1,
        "diseases": {"notification_no": list(numbers)},
        "sections": [{"title": "診断基準", "items": items or [
            {"id": "onset_ym", "label": "発症年月", "type": "yearmonth", "required": True},
            {"id": "grade", "label": "重症度", "type": "choice", "codes": [["1", "軽症"], ["2", "重症"]]},
        ]}],
    }


# --- shipped files ------------------------------------------------------------------------------------------------

def test_every_shipped_file_loads_and_is_named_by_its_code():
    definitions = load_definitions()
    files = sorted(p.stem for p in FORMDEFS.glob("*.json"))
    assert sorted(definitions) == files
    for code, defn in definitions.items():
        assert defn.code == code and defn.version >= 1 and defn.items
        assert len({i.id for i in defn.items}) == len(defn.items)


def test_at_least_five_specific_definitions_of_each_kind_and_one_general_each():
    assert len(_specific("nanbyo")) >= 5
    assert len(_specific("shoman")) >= 5
    generals = [d.code for d in load_definitions().values() if d.general]
    assert sorted(generals) == ["nanbyo-general", "shoman-general"]


def test_shoman_definitions_cover_five_disease_groups():
    group_of = {r["shoman_code"]: r["group_id"].split("-")[0] for r in _csv("shoman_diseases.csv")}
    groups = {group_of[code] for d in _specific("shoman") for code in d.diseases}
    assert len(groups) >= 5, groups


def test_nanbyo_definitions_have_diagnostic_criteria_and_severity_sections():
    for d in _specific("nanbyo") + [definition("nanbyo-general")]:
        titles = [s.title for s in d.sections]
        assert any("診断基準" in t for t in titles), (d.code, titles)
        assert any("重症度" in t for t in titles), (d.code, titles)
        severity = next(s for s in d.sections if "重症度" in s.title)
        assert any(i.required for i in severity.items), d.code


def test_shoman_definitions_ask_for_the_criteria_of_the_programme():
    for d in _specific("shoman") + [definition("shoman-general")]:
        criteria = [s for s in d.sections if "対象基準" in s.title]
        assert criteria and any(i.required for s in criteria for i in s.items), d.code


def test_every_mapped_disease_exists_in_the_masters():
    numbers = {int(r["notification_no"]) for r in _csv("nanbyo_diseases.csv")}
    codes = {r["shoman_code"] for r in _csv("shoman_diseases.csv")}
    for d in _specific("nanbyo"):
        assert d.diseases and set(d.diseases) <= numbers, d.code
    for d in _specific("shoman"):
        assert d.diseases and set(d.diseases) <= codes, d.code
    assert formdefs.unknown_diseases(load_definitions(), MASTERS) == []


def test_expected_diseases_have_their_forms():
    names = {int(r["notification_no"]): r["name_ja"] for r in _csv("nanbyo_diseases.csv") if r["is_subtype"] == "0"}
    for number, code in [(2, "nanbyo-002"), (6, "nanbyo-006"), (49, "nanbyo-049"), (96, "nanbyo-096"),
                         (97, "nanbyo-097")]:
        d = definition(code)
        assert d.diseases == (number,)
        assert d.title == names[number]


def test_a_disease_maps_to_at_most_one_shipped_definition():
    seen = {}
    for d in load_definitions().values():
        for key in d.diseases:
            assert (d.kind, key) not in seen, (key, d.code, seen.get((d.kind, key)))
            seen[(d.kind, key)] = d.code


def test_check_tool_passes_on_the_shipped_files(capsys):
    assert formdefs.main([]) == 0
    out = capsys.readouterr().out
    assert "nanbyo-002" in out and "shoman-general" in out


# --- definition_for -----------------------------------------------------------------------------------------------

def test_definition_for_picks_the_specific_file():
    als = NanbyoDisease(nando_id="2", notification_no=2, is_subtype=False, name_ja="筋萎縮性側索硬化症")
    assert definition_for("nanbyo", als).code == "nanbyo-002"
    crohn_subtype = NanbyoDisease(nando_id="96-1", notification_no=96, is_subtype=True, name_ja="小腸型クローン病")
    assert definition_for("nanbyo", crohn_subtype).code == "nanbyo-096"
    all_b = ShomanDisease(shoman_code="01_01_001", group_id="1-1", nando_id="1", name_ja="前駆B細胞急性リンパ性白血病")
    assert definition_for("shoman", all_b).code == "shoman-01_01_001"
    fsgs = ShomanDisease(shoman_code="02_01_004", group_id="2-1", nando_id="95", name_ja="巣状分節性糸球体硬化症")
    assert definition_for("shoman", fsgs).code == "shoman-02_01_003"


def test_a_subtype_of_notification_2_gets_the_als_form():
    subtype = NanbyoDisease(nando_id="2-1", notification_no=2, is_subtype=True, name_ja="筋萎縮性側索硬化症（亜型）")
    assert definition_for("nanbyo", subtype).code == "nanbyo-002"


def test_unmapped_disease_and_none_get_the_general_form():
    sbma = NanbyoDisease(nando_id="1", notification_no=1, name_ja="球脊髄性筋萎縮症")
    assert definition_for("nanbyo", sbma).code == "nanbyo-general"
    assert definition_for("nanbyo", None).code == "nanbyo-general"
    other = ShomanDisease(shoman_code="01_01_004", group_id="1-1", nando_id="4", name_ja="急性骨髄性白血病")
    assert definition_for("shoman", other).code == "shoman-general"
    assert definition_for("shoman", None).code == "shoman-general"


def test_the_kind_decides_which_number_is_looked_at():
    # A 小慢 disease's notification_no is its number within the group, never a 指定難病 告示番号.
    asthma_like = ShomanDisease(shoman_code="99_99_999", group_id="3-2", nando_id="x", notification_no=2,
                                name_ja="架空の疾病")
    assert definition_for("shoman", asthma_like).code == "shoman-general"
    with pytest.raises(ValueError):
        definition_for("other", None)


def test_definition_by_code():
    assert definition("nanbyo-097").title == "潰瘍性大腸炎"
    with pytest.raises(KeyError):
        definition("nanbyo-999")
    assert definition("nanbyo-002").item("fvc").unit == "%"
    with pytest.raises(KeyError):
        definition("nanbyo-002").item("nope")


# --- validate -----------------------------------------------------------------------------------------------------

ALS = "nanbyo-002"
FVC_MSG = "「%FVC」: 0〜200の数値（小数点以下1桁まで）で入力してください。"


def _one(code, item_id, raw_value, **context):
    """(clean value or None, problems for that item) for one item with `context` making it apply."""
    values, problems = validate(definition(code), {**context, item_id: raw_value}, finalize=False)
    return values.get(item_id), [m for i, m in problems if i == item_id]


@pytest.mark.parametrize("raw, clean", [
    ("65.5", "65.5"), ("６５．５", "65.5"), (" 65 ", "65"), ("65.50", "65.5"), ("0", "0"), ("200", "200"),
    ("0.5", "0.5"), (65.5, "65.5"),
])
def test_decimal_good(raw, clean):
    assert _one(ALS, "fvc", raw) == (clean, [])


@pytest.mark.parametrize("raw", ["65.55", "250", "-1", "abc", "6 5", "1e2", "65,5.5", "NaN"])
def test_decimal_bad(raw):
    assert _one(ALS, "fvc", raw) == (None, [FVC_MSG])


@pytest.mark.parametrize("raw, clean", [("36", 36), ("３６", 36), ("0", 0), ("48", 48), (36, 36)])
def test_integer_good(raw, clean):
    assert _one(ALS, "alsfrs_r", raw) == (clean, [])


@pytest.mark.parametrize("raw", ["49", "-1", "3.5", "三十", "36点", 36.5])
def test_integer_bad(raw):
    assert _one(ALS, "alsfrs_r", raw) == (None, ["「ALSFRS-R 合計点」: 0〜48の整数で入力してください。"])


def test_integer_thousands_separator_and_unbounded_messages():
    assert _one("shoman-01_01_001", "wbc", "１２,５００") == (12500, [])
    assert _one("shoman-01_01_001", "wbc", "2,000,001") == (
        None, ["「診断時白血球数」: 0〜2000000の整数で入力してください。"])


@pytest.mark.parametrize("raw, clean", [
    ("2024-03", "2024-03"), ("2024/3", "2024-03"), ("2024年3月", "2024-03"), ("２０２４－０３", "2024-03"),
    ("202403", "2024-03"), ("2024.12", "2024-12"),
])
def test_yearmonth_good(raw, clean):
    assert _one(ALS, "onset_ym", raw) == (clean, [])


@pytest.mark.parametrize("raw", ["2024-13", "2024-00", "24-03", "1899-12", "2024", "令和6年3月", "2024-03-01"])
def test_yearmonth_bad(raw):
    assert _one(ALS, "onset_ym", raw) == (None, ["「発症年月」: 年月を正しく入力してください（例：2024-03）。"])


@pytest.mark.parametrize("raw, clean", [
    ("2024-02-29", "2024-02-29"), ("2024/2/29", "2024-02-29"), ("2024年2月29日", "2024-02-29"),
    ("２０２４／０２／２９", "2024-02-29"), ("20240229", "2024-02-29"),
])
def test_date_good(raw, clean):
    assert _one(ALS, "vent_start", raw, ventilator="1") == (clean, [])


@pytest.mark.parametrize("raw", ["2023-02-29", "2024-02-30", "2024-13-01", "2024-4-31", "1800-01-01", "昨日",
                                 "2024-02"])
def test_date_bad(raw):
    assert _one(ALS, "vent_start", raw, ventilator="1") == (
        None, ["「人工呼吸器装着日」: 日付を正しく入力してください（例：2024-03-15）。"])


def test_choice():
    assert _one(ALS, "umn", "1") == ("1", [])
    assert _one(ALS, "umn", "１") == ("1", [])
    assert _one(ALS, "umn", "3") == (None, ["「上位運動ニューロン徴候」: 選択肢にない値です。"])
    assert _one(ALS, "umn", "あり") == (None, ["「上位運動ニューロン徴候」: 選択肢にない値です。"])
    assert _one(ALS, "umn", ["1", "2"]) == (None, ["「上位運動ニューロン徴候」: 選択肢にない値です。"])


def test_multichoice_is_stored_in_definition_order_without_duplicates():
    assert _one(ALS, "umn_regions", ["4", "1", "4", ""], umn="1") == (["1", "4"], [])
    assert _one(ALS, "umn_regions", "2", umn="1") == (["2"], [])
    assert _one(ALS, "umn_regions", ["1", "9"], umn="1") == (
        None, ["「上位運動ニューロン徴候を認める領域」: 選択肢にない値です。"])


def test_yesno():
    assert _one(ALS, "progressive", "1") == ("1", [])
    assert _one(ALS, "progressive", "0") == ("0", [])
    assert _one(ALS, "progressive", True) == ("1", [])
    assert _one(ALS, "progressive", "2") == (None, ["「進行性の経過」: 選択肢にない値です。"])


def test_text_and_textarea():
    assert _one(ALS, "gene_name", "ＳＯＤ１", gene_test="3") == ("SOD1", [])
    assert _one(ALS, "gene_name", "x" * 101, gene_test="3") == (
        None, ["「変異を認めた遺伝子」: 100文字以内で入力してください。"])
    assert _one(ALS, "remarks", "  一行目\r\n二行目\t続き  ") == ("一行目\n二行目\t続き", [])
    assert _one(ALS, "remarks", "あ" * 1001) == (None, ["「特記事項」: 1000文字以内で入力してください。"])
    assert _one(ALS, "remarks", "NUL\x00") == (None, ["「特記事項」: 使用できない文字（制御文字）が含まれています。"])
    assert _one(ALS, "gene_name", "改行\nあり", gene_test="3")[1] == [
        "「変異を認めた遺伝子」: 使用できない文字（制御文字）が含まれています。"]


def test_required_only_on_finalize():
    defn = definition(ALS)
    values, problems = validate(defn, {}, finalize=False)
    assert values == {} and problems == []
    values, problems = validate(defn, {"onset_ym": "  ", "umn": ""}, finalize=True)
    assert values == {}
    assert ("onset_ym", "「発症年月」を入力してください。") in problems
    assert ("umn", "「上位運動ニューロン徴候」を選択してください。") in problems
    assert ("progressive", "「進行性の経過」を選択してください。") in problems
    assert ("als_severity", "「ALS重症度分類」を選択してください。") in problems
    ids = {i for i, _ in problems}
    assert "fvc" not in ids  # not required
    assert not ids & {"umn_regions", "lmn_regions", "vent_start", "gene_name"}  # their conditions do not hold
    assert ids == {i.id for i in defn.items if i.required and i.when is None}


def test_format_errors_are_reported_on_drafts_too():
    _, problems = validate(definition(ALS), {"fvc": "abc"}, finalize=False)
    assert problems == [("fvc", FVC_MSG)]


def test_when_drops_values_and_lifts_required():
    defn = definition(ALS)
    raw = {"ventilator": "0", "vent_start": "2024-01-10", "vent_hours": "12", "umn": "2", "umn_regions": ["1"]}
    values, problems = validate(defn, raw, finalize=True)
    assert values["ventilator"] == "0"
    assert not {"vent_start", "vent_hours", "umn_regions"} & set(values)
    assert not {"vent_start", "umn_regions"} & {i for i, _ in problems}

    values, problems = validate(defn, {"ventilator": "2", "umn": "1"}, finalize=True)
    assert ("vent_start", "「人工呼吸器装着日」を入力してください。") in problems
    assert ("umn_regions", "「上位運動ニューロン徴候を認める領域」を選択してください。") in problems

    values, _ = validate(defn, {"ventilator": "2", "vent_start": "2024-01-10"}, finalize=False)
    assert values["vent_start"] == "2024-01-10"


def test_when_on_a_multichoice_holds_if_any_chosen_code_is_listed():
    sle = definition("nanbyo-049")
    values, _ = validate(sle, {"immunotherapy": ["1", "8"], "immunotherapy_other": "リツキシマブ"}, finalize=False)
    assert values["immunotherapy_other"] == "リツキシマブ"
    values, _ = validate(sle, {"immunotherapy": ["1", "2"], "immunotherapy_other": "リツキシマブ"}, finalize=False)
    assert "immunotherapy_other" not in values


def test_when_does_not_hold_if_the_referenced_value_is_invalid():
    values, problems = validate(definition(ALS), {"ventilator": "7", "vent_start": "2024-01-10"}, finalize=True)
    assert "vent_start" not in values
    assert ("ventilator", "「人工呼吸器」: 選択肢にない値です。") in problems
    assert "vent_start" not in {i for i, _ in problems}


def test_unknown_item_ids_are_ignored():
    values, problems = validate(definition(ALS), {"onset_ym": "2024-03", "nope": "x", "__class__": "y"},
                                finalize=False)
    assert values == {"onset_ym": "2024-03"} and problems == []


def _complete_als():
    return {
        "onset_ym": "２０２３年４月", "initial_site": "2", "family_history": "2", "progressive": "1",
        "umn": "1", "umn_regions": ["2", "4"], "lmn": "1", "lmn_regions": ["1", "2", "4"], "emg": "1",
        "emg_regions": ["2", "4"], "excluded": "1", "gene_test": "3", "gene_name": "SOD1", "category": "1",
        "als_severity": "4", "alsfrs_r": "３２", "fvc": "65.5", "nutrition": "2", "ventilator": "1",
        "vent_start": "2024/1/10", "vent_hours": "8", "remarks": "夜間のみ NPPV 使用。",
    }


def test_complete_form_validates_and_values_are_json():
    values, problems = validate(definition(ALS), _complete_als(), finalize=True)
    assert problems == []
    assert values["onset_ym"] == "2023-04" and values["alsfrs_r"] == 32 and values["vent_start"] == "2024-01-10"
    assert list(values) == [i.id for i in definition(ALS).items if i.id in values]  # definition order
    assert json.loads(json.dumps(values)) == values


def test_round_trip_of_clean_values_is_unchanged():
    for code, raw in [(ALS, _complete_als()), ("nanbyo-049", {
        "onset_ym": "2020-01", "acr_criteria": ["1", "5", "10", "11"], "ana_titer": "640", "anti_dsdna": "85.0",
        "c4": "4.5", "lupus_nephritis": "1", "ln_class": "4", "sledai_items": ["arthritis", "low_complement"],
        "sledai_score": "6", "prednisolone": "12.5", "immunotherapy": ["1", "8"], "immunotherapy_other": "x",
    })]:
        values, problems = validate(definition(code), raw, finalize=True)
        assert problems == []
        again, problems = validate(definition(code), copy.deepcopy(values), finalize=True)
        assert again == values and problems == []


# --- display ------------------------------------------------------------------------------------------------------

def test_display_sections():
    values, _ = validate(definition(ALS), _complete_als(), finalize=True)
    values.pop("remarks")
    sections = display_sections(definition(ALS), values)
    assert [t for t, _ in sections] == ["発症と経過", "診断基準", "重症度分類"]
    rows = {label: text for _, items in sections for label, text in items}
    assert rows["%FVC"] == "65.5%"
    assert rows["ALSFRS-R 合計点"] == "32点"
    assert rows["上位運動ニューロン徴候"] == "あり"
    assert rows["上位運動ニューロン徴候を認める領域"] == "頸部・上肢領域、腰部・下肢領域"
    assert rows["進行性の経過"] == "あり"
    assert rows["鑑別診断（頸椎症、多巣性運動ニューロパチー、球脊髄性筋萎縮症等）の除外"] == "除外できる"
    assert rows["人工呼吸器装着日"] == "2024-01-10"
    assert rows["特記事項"] == ""  # blank on paper


def test_display_leaves_out_items_that_do_not_apply():
    sections = display_sections(definition(ALS), {"ventilator": "0", "umn": "2"})
    labels = [label for _, items in sections for label, _ in items]
    assert "人工呼吸器装着日" not in labels and "上位運動ニューロン徴候を認める領域" not in labels
    assert "発症年月" in labels and "%FVC" in labels
    rows = dict(item for _, items in sections for item in items)
    assert rows["人工呼吸器"] == "使用なし" and rows["発症年月"] == ""


def test_display_units_with_latin_letters_get_a_space():
    values, _ = validate(definition("nanbyo-097"), {"hemoglobin": "10.2", "stool_count": "8"}, finalize=False)
    rows = dict(item for _, items in display_sections(definition("nanbyo-097"), values) for item in items)
    assert rows["ヘモグロビン"] == "10.2 g/dL" and rows["排便回数"] == "8回/日"


# --- WTForms ------------------------------------------------------------------------------------------------------

def test_form_fields_build_a_form_that_renders_and_posts_back():
    defn = definition(ALS)
    fields = form_fields(defn)
    assert set(fields) == {f"item_{i.id}" for i in defn.items}
    F = type("F", (Form,), fields)
    posted = MultiDict([("item_onset_ym", "2023-04"), ("item_umn", "1"), ("item_umn_regions", "1"),
                        ("item_umn_regions", "3"), ("item_fvc", "６５．５"), ("item_progressive", "1"),
                        ("item_csrf_token", "ignored"), ("other", "x")])
    form = F(formdata=posted)
    html = "".join(f"{field.label}{field()}" for field in form)
    assert "（未選択）" in html
    assert 'type="checkbox"' in html and 'type="radio"' in html and 'type="date"' in html
    assert "%FVC（%）" in html  # label carries the unit
    assert form.item_fvc.data == "６５．５"
    raw = raw_from_form(defn, posted)
    assert raw["umn_regions"] == ["1", "3"] and raw["fvc"] == "６５．５" and raw["vent_start"] == ""
    values, problems = validate(defn, raw, finalize=False)
    assert problems == []
    assert values == {"onset_ym": "2023-04", "progressive": "1", "umn": "1", "umn_regions": ["1", "3"],
                      "fvc": "65.5"}


def test_form_data_prefills_the_form_from_stored_values():
    defn = definition(ALS)
    values, _ = validate(defn, _complete_als(), finalize=True)
    F = type("F", (Form,), form_fields(defn))
    form = F(data=form_data(defn, values))
    assert form.item_alsfrs_r.data == "32"
    assert form.item_umn_regions.data == ["2", "4"]
    checked = re.findall(r'<input checked[^>]* value="(\w+)"', str(form.item_umn_regions()))
    assert checked == ["2", "4"]
    assert re.findall(r'<option selected value="(\w+)"', str(form.item_als_severity())) == ["4"]


def test_every_shipped_definition_renders():
    for defn in load_definitions().values():
        form = type("F", (Form,), form_fields(defn))()
        for field in form:
            assert str(field())


# --- XML ----------------------------------------------------------------------------------------------------------

def test_to_xml_contains_present_values_only_and_parses():
    defn = definition(ALS)
    values, _ = validate(defn, _complete_als(), finalize=True)
    values.pop("remarks")
    root = etree.fromstring(etree.tostring(to_xml(defn, values), encoding="UTF-8"))
    assert root.tag == "items" and root.get("form") == "nanbyo-002" and root.get("version") == "1"
    items = {e.get("id"): e for e in root.iterfind("item")}
    assert items["onset_ym"].text == "2023-04" and items["onset_ym"].get("type") == "yearmonth"
    assert items["alsfrs_r"].text == "32" and items["fvc"].text == "65.5"
    assert [v.text for v in items["umn_regions"].iterfind("value")] == ["2", "4"]
    assert "remarks" not in items
    assert list(items) == [i.id for i in defn.items if i.id in values]


def test_xml_round_trip_through_raw_from_xml():
    defn = definition(ALS)
    values, _ = validate(defn, _complete_als(), finalize=True)
    raw, problems = raw_from_xml(defn, etree.fromstring(etree.tostring(to_xml(defn, values))))
    assert problems == []
    assert validate(defn, raw, finalize=True) == (values, [])


def test_raw_from_xml_reports_unknown_items_and_wrong_form():
    root = etree.fromstring(b'<items form="nanbyo-006" version="1"><item id="nope">1</item>'
                            b'<item id="fvc" type="decimal">50</item><item id="fvc">60</item></items>')
    raw, problems = raw_from_xml(definition(ALS), root)
    assert raw == {"fvc": "50"}
    assert [i for i, _ in problems] == ["", "nope", "fvc"]


# --- broken definition files -------------------------------------------------------------------------------------

def _broken_cases():
    dup = _minimal()
    dup["sections"][0]["items"].append({"id": "grade", "label": "再掲", "type": "text"})
    unknown_type = _minimal()
    unknown_type["sections"][0]["items"][1]["type"] = "number"
    later_ref = _minimal()
    later_ref["sections"][0]["items"][0]["when"] = {"item": "grade", "in": ["1"]}
    missing_ref = _minimal()
    missing_ref["sections"][0]["items"][1]["when"] = {"item": "nothing", "in": ["1"]}
    bad_code_ref = _minimal(items=[
        {"id": "grade", "label": "重症度", "type": "choice", "codes": [["1", "軽症"]]},
        {"id": "detail", "label": "詳細", "type": "text", "when": {"item": "grade", "in": ["9"]}}])
    uncoded_ref = _minimal(items=[
        {"id": "onset_ym", "label": "発症年月", "type": "yearmonth"},
        {"id": "detail", "label": "詳細", "type": "text", "when": {"item": "onset_ym", "in": ["1"]}}])
    dup_disease = _minimal(numbers=(2,))
    unknown_key = _minimal()
    unknown_key["sections"][0]["items"][0]["requried"] = True
    unknown_top = _minimal() | {"titel": "x"}
    no_codes = _minimal()
    del no_codes["sections"][0]["items"][1]["codes"]
    kind_mismatch = _minimal()
    kind_mismatch["diseases"] = {"shoman_code": ["01_01_001"]}
    shoman_kind = _minimal()
    shoman_kind["kind"] = "shoman"
    bad_range = _minimal(items=[{"id": "n", "label": "数", "type": "integer", "min": 10, "max": 1}])
    bad_yesno = _minimal(items=[{"id": "y", "label": "有無", "type": "yesno", "codes": [["1", "はい"], ["2", "いいえ"]]}])
    dup_code = _minimal(items=[{"id": "c", "label": "選択", "type": "choice", "codes": [["1", "a"], ["1", "b"]]}])
    int_codes = _minimal(items=[{"id": "c", "label": "選択", "type": "choice", "codes": [[1, "a"]]}])
    return [
        ("duplicate id", dup, "id が重複"),
        ("unknown type", unknown_type, "不明な型 'number'"),
        ("when refers to a later item", later_ref, "より前にありません"),
        ("when refers to a missing item", missing_ref, "より前にありません"),
        ("when lists an unknown code", bad_code_ref, "のコードにありません"),
        ("when refers to an uncoded item", uncoded_ref, "choice / multichoice / yesno"),
        ("duplicate disease mapping", dup_disease, "nanbyo-002.json にも割り当て"),
        ("unknown item key", unknown_key, "不明なキー 'requried'"),
        ("unknown top-level key", unknown_top, "不明なキー 'titel'"),
        ("choice without codes", no_codes, "'codes'（選択肢）が必要"),
        ("kind mismatch in diseases", kind_mismatch, "'shoman_code' は使えません"),
        ("kind mismatch in code", shoman_kind, "'shoman-' で始め"),
        ("min above max", bad_range, "'min' が 'max' より大きく"),
        ("yesno codes other than 1/0", bad_yesno, "\"1\" と \"0\""),
        ("duplicate code", dup_code, "コード 1 が重複"),
        ("code that is not a string", int_codes, "[\"コード\", \"表示名\"]"),
    ]


@pytest.mark.parametrize("case, data, expected", _broken_cases(), ids=[c[0] for c in _broken_cases()])
def test_broken_definition_raises_naming_the_file(tmp_path, case, data, expected):
    directory = _shipped_copy(tmp_path)
    _write(directory, data)
    with pytest.raises(DefinitionError) as e:
        load_definitions(directory)
    assert "nanbyo-900.json" in str(e.value)
    assert expected in str(e.value)


@pytest.mark.parametrize("content, expected", [
    ("{not json", "JSON として読めません"),
    ('{"code": "nanbyo-900", "code": "nanbyo-900"}', "キー 'code' が重複"),
    (b"\xff\xfe{", "UTF-8"),
])
def test_unreadable_file_raises_naming_the_file(tmp_path, content, expected):
    directory = _shipped_copy(tmp_path)
    path = directory / "nanbyo-900.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DefinitionError, match="nanbyo-900.json") as e:
        load_definitions(directory)
    assert expected in str(e.value)


def test_file_name_must_be_the_code(tmp_path):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal(), name="nanbyo-901.json")
    with pytest.raises(DefinitionError, match="nanbyo-901.json"):
        load_definitions(directory)


def test_general_definition_is_required_once_per_kind(tmp_path):
    directory = _shipped_copy(tmp_path, "missing")
    (directory / "shoman-general.json").unlink()
    with pytest.raises(DefinitionError, match="shoman の汎用定義"):
        load_definitions(directory)
    directory = _shipped_copy(tmp_path, "twice")
    second = json.loads((FORMDEFS / "nanbyo-general.json").read_text(encoding="utf-8"))
    second["code"] = "nanbyo-general2"
    _write(directory, second)
    with pytest.raises(DefinitionError, match="nanbyo-general2.json"):
        load_definitions(directory)


def test_missing_directory(tmp_path):
    with pytest.raises(DefinitionError):
        load_definitions(tmp_path / "nowhere")


# --- adding a disease form = adding a file -----------------------------------------------------------------------

def test_adding_a_file_adds_a_disease_form(tmp_path):
    directory = _shipped_copy(tmp_path)
    sma = NanbyoDisease(nando_id="3-1", notification_no=3, is_subtype=True, name_ja="脊髄性筋萎縮症 I 型")
    assert definition_for("nanbyo", sma, directory).code == "nanbyo-general"

    formdefs.clear_cache()
    new = _minimal(code="nanbyo-003", numbers=(3,))
    new["title"] = "脊髄性筋萎縮症"
    new["sections"].append({"title": "重症度分類", "items": [
        {"id": "function", "label": "運動機能", "type": "choice", "required": True,
         "codes": [["1", "非座位"], ["2", "座位可"], ["3", "歩行可"]]}]})
    _write(directory, new)
    formdefs.clear_cache()
    defn = definition_for("nanbyo", sma, directory)
    assert defn.code == "nanbyo-003" and defn.title == "脊髄性筋萎縮症"
    assert definition_for("nanbyo", 2, directory).code == "nanbyo-002"  # the shipped files still apply
    values, problems = validate(defn, {"onset_ym": "2024-01"}, finalize=True)
    assert problems == [("function", "「運動機能」を選択してください。")]
    # The default directory is untouched.
    assert definition_for("nanbyo", sma).code == "nanbyo-general"


def test_loading_is_cached_per_directory(tmp_path):
    directory = _shipped_copy(tmp_path)
    first = load_definitions(directory)
    _write(directory, _minimal())
    assert "nanbyo-900" not in load_definitions(directory)  # cached until cleared
    formdefs.clear_cache()
    assert "nanbyo-900" in load_definitions(directory)
    assert set(first) < set(load_definitions(directory))


def test_definitions_are_hashable_and_bare_keys_work():
    defn = definition(ALS)
    assert {defn: 1}[definition(ALS)] == 1  # usable as a cache key, e.g. for a built form class
    assert definition_for("nanbyo", 2).code == definition_for("nanbyo", "2").code == "nanbyo-002"
    assert definition_for("shoman", "03_02_002").code == "shoman-03_02_002"


def test_to_xml_leaves_out_stale_values_of_items_that_do_not_apply():
    root = to_xml(definition(ALS), {"ventilator": "0", "vent_start": "2024-01-10", "onset_ym": ""})
    assert [e.get("id") for e in root.iterfind("item")] == ["ventilator"]


def test_lone_surrogates_are_refused_so_the_xml_stays_writable():
    assert _one(ALS, "remarks", "a\ud800b") == (None, ["「特記事項」: 使用できない文字（制御文字）が含まれています。"])
