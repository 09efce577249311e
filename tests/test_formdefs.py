"""Form definitions as data (formdefs/*.json): loading, mapping to diseases, validation, display, WTForms, XML."""
import copy
import csv
import dataclasses
import datetime as dt
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
from nanbyo.formdefs import (DefinitionError, all_versions, definition, definition_for, diagnosis_date_required,
                             display_sections, form_data, form_fields, load_definitions, raw_from_form, raw_from_xml,
                             to_xml, validate)

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
    newest = sorted(p.stem for p in FORMDEFS.glob("*.json") if "." not in p.stem)
    assert sorted(definitions) == newest
    for code, defn in definitions.items():
        assert defn.code == code and defn.version >= 1 and defn.items
        assert len({i.id for i in defn.items}) == len(defn.items)
    versions = all_versions()
    files = sorted(p.name for p in FORMDEFS.glob("*.json"))
    assert sorted(f"{c}.json" if definitions[c].version == v else f"{c}.v{v}.json" for c, v in versions) == files
    for (code, version), defn in versions.items():
        assert (defn.code, defn.version) == (code, version)
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
    # A code as a file or form sends it (ASCII, spaces around) and an empty one: the same as any other value.
    assert _one(ALS, "umn", " 1\n") == ("1", []) and _one(ALS, "umn", "  ") == (None, [])
    assert _one(ALS, "umn", " 3 ") == (None, ["「上位運動ニューロン徴候」: 選択肢にない値です。"])


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
    assert definition_for("nanbyo", sma, directory=directory).code == "nanbyo-general"

    formdefs.clear_cache()
    new = _minimal(code="nanbyo-003", numbers=(3,))
    new["title"] = "脊髄性筋萎縮症"
    new["sections"].append({"title": "重症度分類", "items": [
        {"id": "function", "label": "運動機能", "type": "choice", "required": True,
         "codes": [["1", "非座位"], ["2", "座位可"], ["3", "歩行可"]]}]})
    _write(directory, new)
    formdefs.clear_cache()
    defn = definition_for("nanbyo", sma, directory=directory)
    assert defn.code == "nanbyo-003" and defn.title == "脊髄性筋萎縮症"
    assert definition_for("nanbyo", 2, directory=directory).code == "nanbyo-002"  # the shipped files still apply
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


# --- versions side by side ---------------------------------------------------------------------------------------

def _two_versions(tmp_path, name="versions", v2_extra=None):
    """Shipped files plus nanbyo-900 v1 (nanbyo-900.v1.json) and v2 (nanbyo-900.json, one more item)."""
    directory = _shipped_copy(tmp_path, name)
    v1 = _minimal()
    v2 = copy.deepcopy(v1) | {"version": 2} | (v2_extra or {})
    v2["sections"][0]["items"].append({"id": "gene", "label": "遺伝子検査", "type": "yesno"})
    _write(directory, v1, name="nanbyo-900.v1.json")
    _write(directory, v2)
    return directory


def test_versions_of_one_code_load_side_by_side(tmp_path):
    directory = _two_versions(tmp_path)
    v1 = definition("nanbyo-900", 1, directory=directory)
    v2 = definition("nanbyo-900", 2, directory=directory)
    assert (v1.version, v2.version) == (1, 2) and v1 != v2
    assert [i.id for i in v1.items] == ["onset_ym", "grade"]
    assert [i.id for i in v2.items] == ["onset_ym", "grade", "gene"]
    assert definition("nanbyo-900", directory=directory) is v2  # without a version: the newest
    assert definition("nanbyo-900", "1", directory=directory) is v1  # e.g. the version attribute of an XML
    with pytest.raises(KeyError):
        definition("nanbyo-900", 3, directory=directory)
    assert load_definitions(directory)["nanbyo-900"] is v2
    versions = all_versions(directory)
    assert versions[("nanbyo-900", 1)] is v1 and versions[("nanbyo-900", 2)] is v2
    assert set(load_definitions(directory)) == {code for code, _ in versions}
    assert definition_for("nanbyo", 900, directory=directory) is v2  # both map 900: versions share their diseases
    # A document written on v1 keeps its values on v1; v2 is a different form.
    assert validate(v1, {"onset_ym": "2024-03", "gene": "1"}, finalize=True) == ({"onset_ym": "2024-03"}, [])
    assert {v1: "a", v2: "b"}[definition("nanbyo-900", 1, directory=directory)] == "a"


def test_definition_for_picks_the_newest_version_valid_on_the_day(tmp_path):
    directory = _two_versions(tmp_path, v2_extra={"valid_from": "2020-04-01"})
    v3 = _minimal() | {"version": 3, "valid_from": "2999-04-01"}  # published ahead of its start
    (directory / "nanbyo-900.json").rename(directory / "nanbyo-900.v2.json")
    _write(directory, v3)
    assert definition("nanbyo-900", directory=directory).version == 3
    assert definition("nanbyo-900", 2, directory=directory).valid_from == dt.date(2020, 4, 1)

    def version_on(on):
        return definition_for("nanbyo", 900, on=on, directory=directory).version

    assert version_on(dt.date(2020, 3, 31)) == 1  # no valid_from: always valid
    assert version_on(dt.date(2020, 4, 1)) == 2
    assert version_on(None) == 2  # today
    assert version_on(dt.date(2999, 3, 31)) == 2
    assert version_on(dt.date(2999, 4, 1)) == 3
    # 2020-03-31 15:00 UTC is already 4/1 in Japan.
    assert version_on(dt.datetime(2020, 3, 31, 15, 0, tzinfo=dt.timezone.utc)) == 2
    assert version_on(dt.datetime(2020, 3, 31, 23, 0)) == 1
    with pytest.raises(TypeError):
        definition_for("nanbyo", 900, directory)  # the third argument is the day, not the directory


def test_a_form_not_valid_yet_or_dropping_a_disease_gives_the_general_form(tmp_path):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal(numbers=(900, 901)) | {"valid_from": "2999-01-01"})
    assert definition_for("nanbyo", 900, directory=directory).code == "nanbyo-general"
    assert definition_for("nanbyo", 900, on=dt.date(2999, 1, 1), directory=directory).code == "nanbyo-900"

    directory = _shipped_copy(tmp_path, "dropped")
    _write(directory, _minimal(numbers=(900, 901)), name="nanbyo-900.v1.json")
    _write(directory, _minimal(numbers=(900,)) | {"version": 2})
    assert definition_for("nanbyo", 901, directory=directory).code == "nanbyo-general"
    assert definition_for("nanbyo", 900, directory=directory).version == 2


def test_general_form_versions(tmp_path):
    directory = _shipped_copy(tmp_path)
    general = json.loads((FORMDEFS / "nanbyo-general.json").read_text(encoding="utf-8"))
    (directory / "nanbyo-general.json").rename(directory / "nanbyo-general.v1.json")
    _write(directory, general | {"version": 2, "valid_from": "2999-01-01"})
    assert definition_for("nanbyo", None, directory=directory).version == 1
    assert definition_for("nanbyo", 1, on=dt.date(2999, 1, 1), directory=directory).version == 2
    # With no version valid yet, the oldest one is used: there is always a general form.
    (directory / "nanbyo-general.v1.json").unlink()
    formdefs.clear_cache()
    assert definition_for("nanbyo", None, directory=directory).version == 2


def _version_file_cases():
    v1, v2 = _minimal(), _minimal() | {"version": 2}
    general = json.loads((FORMDEFS / "nanbyo-general.json").read_text(encoding="utf-8"))
    return [
        ("vN file whose version is not N", [("nanbyo-900.json", v2), ("nanbyo-900.v3.json", v1)],
         "nanbyo-900.v3.json", "ファイル名の版 v3 が 'version'（1）と違います"),
        ("same code and version twice", [("nanbyo-900.json", v1), ("nanbyo-900.v1.json", v1)],
         "nanbyo-900.v1.json", "版 1 は nanbyo-900.json にもあります"),
        ("vN file newer than the code's file", [("nanbyo-900.json", v1), ("nanbyo-900.v2.json", v2)],
         "nanbyo-900.v2.json", "nanbyo-900.json の版 1 より新しく"),
        ("vN file without the code's file", [("nanbyo-900.v1.json", v1)],
         "nanbyo-900.v1.json", "最新版の nanbyo-900.json がありません"),
        ("vN file of another code", [("nanbyo-900.json", v2), ("nanbyo-901.v1.json", v1)],
         "nanbyo-901.v1.json", "ファイル名は code と同じ"),
        ("leading zero", [("nanbyo-900.json", v2), ("nanbyo-900.v01.json", v1)],
         "nanbyo-900.v01.json", "ファイル名は code と同じ"),
        ("version zero", [("nanbyo-900.json", v2), ("nanbyo-900.v0.json", v1)],
         "nanbyo-900.v0.json", "ファイル名は code と同じ"),
        ("other suffix", [("nanbyo-900.json", v2), ("nanbyo-900.old.json", v1)],
         "nanbyo-900.old.json", "ファイル名は code と同じ"),
        ("capital V", [("nanbyo-900.json", v2), ("nanbyo-900.V1.json", v1)],
         "nanbyo-900.V1.json", "ファイル名は code と同じ"),
        ("older version maps another code's disease", [("nanbyo-900.json", v2),
                                                        ("nanbyo-900.v1.json", _minimal(numbers=(900, 2)))],
         "nanbyo-900.v1.json", "告示番号 2 は nanbyo-002.json にも割り当て"),
        ("general in one version only", [("nanbyo-general.json", general | {"version": 2}),
                                         ("nanbyo-general.v1.json", _minimal(code="nanbyo-general"))],
         "nanbyo-general.v1.json", "汎用定義（general）かどうかが違います"),
        ("valid_from going back", [("nanbyo-900.json", v2 | {"valid_from": "2025-01-01"}),
                                   ("nanbyo-900.v1.json", v1 | {"valid_from": "2026-01-01"})],
         "nanbyo-900.json", "旧版 nanbyo-900.v1.json の 'valid_from'（2026-01-01）より前"),
    ]


@pytest.mark.parametrize("case, files, named, expected", _version_file_cases(),
                         ids=[c[0] for c in _version_file_cases()])
def test_version_file_errors_name_the_file(tmp_path, case, files, named, expected):
    directory = _shipped_copy(tmp_path)
    for name, data in files:
        _write(directory, data, name=name)
    with pytest.raises(DefinitionError) as e:
        load_definitions(directory)
    assert str(e.value).startswith(f"{named}: ")
    assert expected in str(e.value)


def test_valid_from(tmp_path):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal() | {"valid_from": "2026-04-01"})
    assert definition("nanbyo-900", directory=directory).valid_from == dt.date(2026, 4, 1)
    assert definition("nanbyo-002").valid_from is None


@pytest.mark.parametrize("value", ["2026/04/01", "2026-4-1", "2026-02-30", "20260401", "", 20260401, None,
                                   "２０２６-０４-０１", "2026-04-01T00:00"])
def test_bad_valid_from_is_refused(tmp_path, value):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal() | {"valid_from": value})
    with pytest.raises(DefinitionError, match=r"^nanbyo-900\.json: 'valid_from' は"):
        load_definitions(directory)


def test_check_tool_lists_every_version(tmp_path, capsys):
    assert formdefs.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("nanbyo-006\tv2\t") for line in lines)
    assert any(line.startswith("nanbyo-006\tv1\t") and "旧版 nanbyo-006.v1.json" in line for line in lines)
    # An older version's unknown disease is reported with its own file name.
    directory = _two_versions(tmp_path)
    assert formdefs.main([str(directory), "--masters", str(MASTERS)]) == 1
    err = capsys.readouterr().err
    assert "nanbyo-900.v1.json: 告示番号 900 はマスタにありません" in err
    assert "nanbyo-900.json: 告示番号 900 はマスタにありません" in err


# --- the shipped Parkinson form: v2 beside v1 ----------------------------------------------------------------------

PD = "nanbyo-006"


def test_parkinson_v1_and_v2_both_load():
    v1, v2 = definition(PD, 1), definition(PD, 2)
    assert definition(PD) is v2 and definition_for("nanbyo", 6) is v2
    assert (FORMDEFS / "nanbyo-006.v1.json").is_file()
    assert v1.diagnosis_date == "required" and v1.valid_from is None and v1.patient_fields == ()
    assert v2.diagnosis_date == {"item": "severity_met", "in": ["1"]}
    severity = next(s for s in v2.sections if s.title == "重症度分類")
    met = severity.items[-1]
    assert met.id == "severity_met" and met.type == "yesno" and met.required
    assert met.code_labels == {"1": "満たす", "0": "満たさない（軽症）"}


def test_parkinson_v1_is_the_previous_definition():
    """v2 differs from v1 only in the version, the note, the 診断年月日 rule and the added item."""
    v1, v2 = definition(PD, 1), definition(PD, 2)
    sections = tuple(dataclasses.replace(s, items=tuple(i for i in s.items if i.id != "severity_met"))
                     for s in v2.sections)
    assert dataclasses.replace(v2, version=1, description=v1.description, diagnosis_date="required",
                               sections=sections) == v1
    assert [i.id for i in v2.items] == [i.id for i in v1.items] + ["severity_met"]
    assert v1.description in v2.description


def test_parkinson_v1_documents_keep_working():
    v1, v2 = definition(PD, 1), definition(PD, 2)
    values, problems = validate(v1, {"onset_ym": "2020-01", "parkinsonism": ["1", "2"], "absolute_exclusion": "0",
                                     "brain_imaging": "1", "diagnosis": "1", "hoehn_yahr": "2",
                                     "life_function": "1"}, finalize=True)
    assert problems == []
    assert diagnosis_date_required(v1, values)  # v1: always
    element = to_xml(v1, values)
    assert element.get("version") == "1"
    assert raw_from_xml(v1, element)[1] == []
    # v2 asks for the new item
    _, problems = validate(v2, values, finalize=True)
    assert problems == [("severity_met", "「重症度分類を満たす（Hoehn-Yahr 3度以上かつ生活機能障害度2度以上）」を選択してください。")]


def test_raw_from_xml_checks_the_version_against_the_definition():
    v1, v2 = definition(PD, 1), definition(PD, 2)
    element = etree.fromstring(b'<items form="nanbyo-006" version="1"><item id="onset_ym">2020-01</item></items>')
    assert raw_from_xml(v1, element) == ({"onset_ym": "2020-01"}, [])
    raw, problems = raw_from_xml(v2, element)  # a known older version: the caller passes that version
    assert problems == [("", "様式 nanbyo-006 の版 1 の項目を版 2 の定義で読もうとしました。版 1 の定義で読み込んでください。")]
    element.set("version", "7")
    assert raw_from_xml(v2, element)[1] == [("", "様式 nanbyo-006 に版 '7' はありません（あるのは版 1、2）。")]
    del element.attrib["version"]
    assert raw_from_xml(v2, element)[1] == [("", "様式 nanbyo-006 の版（version 属性）がありません。")]
    element.set("form", "nanbyo-002")
    assert raw_from_xml(v2, element)[1][0] == ("", "様式コード 'nanbyo-002' は nanbyo-006 ではありません。")


# --- 診断年月日 ----------------------------------------------------------------------------------------------------

def test_diagnosis_date_required_by_default_and_optional():
    assert definition(ALS).diagnosis_date == "required"
    assert diagnosis_date_required(definition(ALS), {})
    assert all(d.diagnosis_date == "required" for d in load_definitions().values() if d.code != PD)


@pytest.mark.parametrize("setting, values, required", [
    ("required", {}, True),
    ("required", {"grade": "1"}, True),
    ("optional", {}, False),
    ("optional", {"grade": "2"}, False),
    ({"item": "grade", "in": ["2"]}, {"grade": "2"}, True),
    ({"item": "grade", "in": ["2"]}, {"grade": "1"}, False),
    ({"item": "grade", "in": ["2"]}, {}, False),  # not answered (yet)
    ({"item": "grade", "in": ["1", "2"]}, {"grade": "1"}, True),
    ({"item": "flags", "in": ["b"]}, {"flags": ["a", "b"]}, True),
    ({"item": "flags", "in": ["b"]}, {"flags": ["a"]}, False),
    ({"item": "confirmed", "in": ["1"]}, {"confirmed": "1"}, True),
    ({"item": "confirmed", "in": ["1"]}, {"confirmed": "0"}, False),
])
def test_diagnosis_date_required(tmp_path, setting, values, required):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal(items=[
        {"id": "onset_ym", "label": "発症年月", "type": "yearmonth"},
        {"id": "grade", "label": "重症度", "type": "choice", "codes": [["1", "軽症"], ["2", "重症"]]},
        {"id": "flags", "label": "所見", "type": "multichoice", "codes": [["a", "A"], ["b", "B"]]},
        {"id": "confirmed", "label": "確定", "type": "yesno"},
    ]) | {"diagnosis_date": setting})
    defn = definition("nanbyo-900", directory=directory)
    assert defn.diagnosis_date == setting
    assert diagnosis_date_required(defn, values) is required


def test_parkinson_diagnosis_date_only_when_the_severity_criteria_are_met():
    v2 = definition(PD)
    assert diagnosis_date_required(v2, {"hoehn_yahr": "3", "life_function": "2", "severity_met": "1"})
    assert not diagnosis_date_required(v2, {"hoehn_yahr": "2", "life_function": "1", "severity_met": "0"})
    assert not diagnosis_date_required(v2, {})


@pytest.mark.parametrize("setting, expected", [
    ("maybe", "'diagnosis_date' は \"required\"、\"optional\" か条件"),
    ("Required", "'diagnosis_date' は \"required\""),
    (True, "'diagnosis_date' は \"required\""),
    (None, "'diagnosis_date' は \"required\""),
    (["grade", "1"], "'diagnosis_date' は \"required\""),
    ({"item": "nope", "in": ["1"]}, "'diagnosis_date' が参照する項目 'nope' は、この様式にありません"),
    ({"item": ["grade"], "in": ["1"]}, "が参照する項目 ['grade'] は"),
    ({"item": "onset_ym", "in": ["1"]}, "choice / multichoice / yesno の項目です（onset_ym は yearmonth）"),
    ({"item": "grade", "in": ["9"]}, "'in' の 9 は項目 'grade' のコードにありません"),
    ({"item": "grade", "in": []}, "'in' はコード（文字列）の空でないリスト"),
    ({"item": "grade", "in": [1]}, "'in' はコード（文字列）の空でないリスト"),
    ({"item": "grade", "in": "1"}, "'in' はコード（文字列）の空でないリスト"),
    ({"item": "grade"}, "キー 'in' がありません"),
    ({"item": "grade", "in": ["1"], "not": True}, "不明なキー 'not'"),
])
def test_bad_diagnosis_date_is_refused(tmp_path, setting, expected):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal() | {"diagnosis_date": setting})
    with pytest.raises(DefinitionError) as e:
        load_definitions(directory)
    assert str(e.value).startswith("nanbyo-900.json: ")
    assert expected in str(e.value)


# --- patient fields -----------------------------------------------------------------------------------------------

def test_patient_fields_default_to_none_and_no_shipped_form_asks_for_insurance(tmp_path):
    assert all(d.patient_fields == () for d in all_versions().values())
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal() | {"patient_fields": ["insurance"]})
    _write(directory, _minimal(code="nanbyo-901", numbers=(901,)) | {"patient_fields": []})
    assert definition("nanbyo-900", directory=directory).patient_fields == ("insurance",)
    assert definition("nanbyo-901", directory=directory).patient_fields == ()


@pytest.mark.parametrize("value, expected", [
    ("insurance", "文字列のリスト"),
    ({"insurance": True}, "文字列のリスト"),
    (None, "文字列のリスト"),
    ([1], "文字列のリスト"),
    (["address"], "'address' は使えません（使える値: insurance）"),
    (["Insurance"], "'Insurance' は使えません"),
    (["insurance", "insurance"], "insurance が重複"),
])
def test_bad_patient_fields_are_refused(tmp_path, value, expected):
    directory = _shipped_copy(tmp_path)
    _write(directory, _minimal() | {"patient_fields": value})
    with pytest.raises(DefinitionError) as e:
        load_definitions(directory)
    assert str(e.value).startswith("nanbyo-900.json: 'patient_fields' ")
    assert expected in str(e.value)
