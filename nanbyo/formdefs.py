"""Disease-specific form items as data: one JSON definition file per form drives entry, validation, print and XML.

A definition file (``formdefs/<code>.json``, format in ``formdefs/README.md``) lists the items of one 臨個票 or
医療意見書 form: types, units, required flags, code lists and conditions (``when``). Adding a disease form means adding
a file; nothing here knows any disease. Every file is checked strictly when loaded: a broken file stops the loader
with a :class:`DefinitionError` that names the file and the problem, so a mistake never reaches a doctor's screen.

Versions: the newest version of a form is ``<code>.json``; older versions stay beside it as ``<code>.v<N>.json``, so a
document keeps opening with the version it was written with (it stores code and version: :func:`definition`).
New documents get the newest version whose ``valid_from`` has come (:func:`definition_for`).

Values of a filled-in form are a JSON-serialisable ``dict`` (item id -> value) produced by :func:`validate`, the
single rule for what a value may be; the entry form (:func:`form_fields`), the details screen and the PDF
(:func:`display_sections`) and the XML (:func:`to_xml`, :func:`raw_from_xml`) all follow the same definition.

No Flask-Admin here; WTForms only inside :func:`form_fields` (the check tool installs without it).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree

from nanbyo.resources import resource

KINDS = ("nanbyo", "shoman")
TYPES = ("text", "textarea", "integer", "decimal", "date", "yearmonth", "choice", "multichoice", "yesno")
CODED_TYPES = ("choice", "multichoice", "yesno")
DEFAULT_DIRECTORY = resource("formdefs")
DEFAULT_MAX_LENGTH = {"text": 200, "textarea": 2000}
DEFAULT_PLACES = 1
MAX_PLACES = 6
YESNO_CODES = (("1", "あり"), ("0", "なし"))
MAX_FILE_BYTES = 1_000_000
MAX_DIGITS = 15  # integers and decimals: more digits than any clinical value needs
UNSELECTED = ("", "（未選択）")
_JST = ZoneInfo("Asia/Tokyo")

_CODE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ID_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SHOMAN_CODE_RE = re.compile(r"\d{2}_\d{2}_\d{3}")
_FORM_CODE_RE = re.compile(r"[0-9A-Za-z_.-]{1,20}")
# Characters XML 1.0 cannot carry, and other C0/C1 controls; tab and newline are allowed in a textarea only.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINE_BREAK_RE = re.compile(r"[\t\n\r\u2028\u2029\x85]")

_TOP_KEYS = {"code", "kind", "title", "version", "diseases", "sections", "description", "source", "valid_from",
             "diagnosis_date", "patient_fields"}
_TOP_REQUIRED = {"code", "kind", "title", "version", "diseases", "sections"}
_SECTION_KEYS = {"title", "items", "help"}
_COMMON_ITEM_KEYS = {"id", "label", "type", "required", "help", "when"}
_TYPE_KEYS = {
    "text": {"max_length", "unit"},
    "textarea": {"max_length"},
    "integer": {"min", "max", "unit"},
    "decimal": {"min", "max", "places", "unit"},
    "date": set(),
    "yearmonth": set(),
    "choice": {"codes"},
    "multichoice": {"codes"},
    "yesno": {"codes"},
}
_DISEASE_KEYS = {"nanbyo": "notification_no", "shoman": "shoman_code"}
DIAGNOSIS_DATE_MODES = ("required", "optional")  # or a condition {"item": ..., "in": [...]}
PATIENT_FIELDS = ("insurance",)  # groups of patient fields a form may ask for (insurance: 保険の種別・保険者番号・記号番号)
# <code>.json (newest version) or <code>.v<N>.json (an older version N); codes have no dots.
_FILE_RE = re.compile(r"(?P<code>[^.]+)(?:\.v(?P<version>[1-9][0-9]*))?\.json")
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DefinitionError(Exception):
    """A broken definition file (or directory); the message names the file and the problem."""


@dataclass(frozen=True)
class Item:
    id: str
    label: str
    type: str
    required: bool = False
    unit: str = ""
    codes: tuple[tuple[str, str], ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    places: int | None = None
    max_length: int | None = None
    when: dict | None = None
    help: str = ""

    def __hash__(self):  # `when` is a dict; the id, type and label identify an item well enough
        return hash((self.id, self.type, self.label))

    @cached_property
    def code_labels(self) -> dict[str, str]:  # read for every value of a coded item: made once (read only)
        return dict(self.codes)

    @property
    def label_with_unit(self) -> str:
        return f"{self.label}（{self.unit}）" if self.unit else self.label


@dataclass(frozen=True)
class Section:
    title: str
    items: tuple[Item, ...]
    help: str = ""


@dataclass(frozen=True)
class FormDefinition:
    code: str
    kind: str
    title: str
    version: int
    sections: tuple[Section, ...]
    general: bool = False
    diseases: tuple = ()  # 告示番号 (int) for nanbyo, shoman_code (str) for shoman; () for the general form
    description: str = ""
    source: str = ""
    valid_from: dt.date | None = None  # first day new documents may use this version; None = always
    diagnosis_date: str | dict = "required"  # "required", "optional" or {"item": id, "in": [codes]}
    patient_fields: tuple[str, ...] = ()  # names from PATIENT_FIELDS

    def __hash__(self):  # `diagnosis_date` may be a dict; code and version identify a definition well enough
        return hash((self.code, self.version))

    @cached_property
    def items(self) -> tuple[Item, ...]:
        """All items, in form order."""
        return tuple(item for section in self.sections for item in section.items)

    @cached_property
    def _by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    def item(self, item_id: str) -> Item:
        """The item with that id; KeyError if the form has none."""
        return self._by_id[item_id]


# ---------------------------------------------------------------------------------------------------------------
# Loading and checking definition files


def _reject_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"キー '{key}' が重複しています")
        seen[key] = value
    return seen


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value == value and value not in (float("inf"), float("-inf"))


def _nonempty_str(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


class _Checker:
    """Parses one file into a FormDefinition; every problem raises DefinitionError naming the file."""

    def __init__(self, path: Path):
        self.path = path
        self.older = False  # an older version's file, <code>.v<N>.json

    def fail(self, problem: str):
        raise DefinitionError(f"{self.path.name}: {problem}")

    def keys(self, obj, allowed: set, required: set, where: str):
        if not isinstance(obj, dict):
            self.fail(f"{where}はオブジェクト（{{...}}）でなければなりません。")
        unknown = sorted(set(obj) - allowed)
        if unknown:
            self.fail(f"{where}に不明なキー {', '.join(repr(k) for k in unknown)} があります。")
        missing = sorted(k for k in required if k not in obj)
        if missing:
            self.fail(f"{where}にキー {', '.join(repr(k) for k in missing)} がありません。")

    def text(self, obj, key, where, *, optional=False) -> str:
        value = obj.get(key, "" if optional else None)
        if optional and value == "":
            return ""
        if not _nonempty_str(value):
            self.fail(f"{where}の '{key}' は空でない文字列でなければなりません。")
        return value.strip()

    def parse(self) -> FormDefinition:
        try:
            size = self.path.stat().st_size
        except OSError as e:
            self.fail(f"読み込めません（{e.strerror}）。")
        if size > MAX_FILE_BYTES:
            self.fail(f"ファイルが大きすぎます（{MAX_FILE_BYTES}バイトまで）。")
        try:
            data = json.loads(self.path.read_bytes().decode("utf-8-sig"), object_pairs_hook=_reject_duplicate_keys)
        except UnicodeDecodeError:
            self.fail("UTF-8 のテキストではありません。")
        except ValueError as e:  # JSONDecodeError is a ValueError; so is a duplicate key
            self.fail(f"JSON として読めません（{e}）。")

        self.keys(data, _TOP_KEYS, _TOP_REQUIRED, "定義")
        code = data["code"]
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            self.fail("'code' は英小文字・数字・ハイフン・下線の文字列でなければなりません。")
        kind = data["kind"]
        if kind not in KINDS:
            self.fail(f"'kind' は {' / '.join(KINDS)} のいずれかでなければなりません。")
        if not code.startswith(f"{kind}-"):
            self.fail(f"'code' は kind と同じ '{kind}-' で始めてください。")
        title = self.text(data, "title", "定義")
        version = data["version"]
        if not _is_int(version) or version < 1:
            self.fail("'version' は1以上の整数でなければなりません。")
        self.file_name(code, version)
        valid_from = self.valid_from(data["valid_from"]) if "valid_from" in data else None
        patient_fields = self.patient_fields(data["patient_fields"]) if "patient_fields" in data else ()
        general, diseases = self.diseases(data["diseases"], kind)
        sections = data["sections"]
        if not isinstance(sections, list) or not sections:
            self.fail("'sections' は空でないリストでなければなりません。")
        seen: dict[str, Item] = {}
        parsed = tuple(self.section(s, n, seen) for n, s in enumerate(sections, start=1))
        diagnosis_date = self.diagnosis_date(data["diagnosis_date"], seen) if "diagnosis_date" in data else "required"
        return FormDefinition(code=code, kind=kind, title=title, version=version, sections=parsed, general=general,
                              diseases=diseases, description=self.text(data, "description", "定義", optional=True),
                              source=self.text(data, "source", "定義", optional=True), valid_from=valid_from,
                              diagnosis_date=diagnosis_date, patient_fields=patient_fields)

    def file_name(self, code: str, version: int) -> None:
        """The newest version is <code>.json, an older one <code>.v<version>.json; sets self.older."""
        m = _FILE_RE.fullmatch(self.path.name)
        if m is None or m["code"] != code:
            self.fail(f"ファイル名は code と同じ '{code}.json'（旧版は '{code}.v{version}.json'）でなければなりません。")
        if m["version"] is not None and int(m["version"]) != version:
            self.fail(f"ファイル名の版 v{m['version']} が 'version'（{version}）と違います。版 {version} の旧版のファイル名は "
                      f"'{code}.v{version}.json' です。")
        self.older = m["version"] is not None

    def valid_from(self, value) -> dt.date:
        day = None
        if isinstance(value, str) and _ISO_DATE_RE.fullmatch(value):
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                pass
        if day is None:
            self.fail(f"'valid_from' は実在する日付の \"YYYY-MM-DD\" 形式の文字列でなければなりません（{value!r}）。")
        return day

    def patient_fields(self, value) -> tuple[str, ...]:
        allowed = ", ".join(PATIENT_FIELDS)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"'patient_fields' は文字列のリストでなければなりません（使える値: {allowed}）。")
        unknown = [v for v in value if v not in PATIENT_FIELDS]
        if unknown:
            self.fail(f"'patient_fields' の {', '.join(repr(v) for v in unknown)} は使えません（使える値: {allowed}）。")
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            self.fail(f"'patient_fields' に {', '.join(duplicates)} が重複しています。")
        return tuple(value)

    def diagnosis_date(self, value, items: dict) -> str | dict:
        if isinstance(value, str) and value in DIAGNOSIS_DATE_MODES:
            return value
        if not isinstance(value, dict):
            self.fail(f"'diagnosis_date' は \"required\"、\"optional\" か条件 {{\"item\": 項目id, \"in\": [コード]}} "
                      f"でなければなりません（{json.dumps(value, ensure_ascii=False)}）。")
        return self.condition(value, "'diagnosis_date'", "'diagnosis_date'", items, "この様式にありません。")

    def diseases(self, obj, kind) -> tuple[bool, tuple]:
        key = _DISEASE_KEYS[kind]
        other = _DISEASE_KEYS["shoman" if kind == "nanbyo" else "nanbyo"]
        if isinstance(obj, dict) and other in obj:
            self.fail(f"kind が {kind} の定義に '{other}' は使えません（'{key}' を使います）。")
        self.keys(obj, {key, "general"}, set(), "'diseases'")
        if len(obj) != 1:
            self.fail(f"'diseases' には '{key}' か 'general' のどちらか一つだけを書きます。")
        if "general" in obj:
            if obj["general"] is not True:
                self.fail("'diseases' の 'general' は true でなければなりません。")
            return True, ()
        values = obj[key]
        if not isinstance(values, list) or not values:
            self.fail(f"'diseases' の '{key}' は空でないリストでなければなりません。")
        for v in values:
            if kind == "nanbyo" and not (_is_int(v) and v >= 1):
                self.fail(f"告示番号 {v!r} は1以上の整数でなければなりません。")
            if kind == "shoman" and not (isinstance(v, str) and _SHOMAN_CODE_RE.fullmatch(v)):
                self.fail(f"小慢の疾病コード {v!r} は '01_01_001' の形でなければなりません。")
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            self.fail(f"'diseases' に {', '.join(duplicates)} が重複しています。")
        return False, tuple(values)

    def section(self, obj, number, seen) -> Section:
        where = f"セクション{number}"
        self.keys(obj, _SECTION_KEYS, {"title", "items"}, where)
        title = self.text(obj, "title", where)
        items = obj["items"]
        if not isinstance(items, list) or not items:
            self.fail(f"{where}（{title}）の 'items' は空でないリストでなければなりません。")
        parsed = []
        for n, raw in enumerate(items, start=1):
            item = self.item(raw, f"{where}（{title}）の項目{n}", seen)
            seen[item.id] = item
            parsed.append(item)
        return Section(title=title, items=tuple(parsed), help=self.text(obj, "help", where, optional=True))

    def item(self, obj, where, seen) -> Item:
        if not isinstance(obj, dict):
            self.fail(f"{where}はオブジェクト（{{...}}）でなければなりません。")
        item_id = obj.get("id")
        if not isinstance(item_id, str) or not _ID_RE.fullmatch(item_id):
            self.fail(f"{where}: 'id' は英小文字で始まる英小文字・数字・下線（40文字まで）でなければなりません。")
        where = f"項目 '{item_id}'"
        if item_id in seen:
            self.fail(f"{where}: id が重複しています。")
        item_type = obj.get("type")
        if item_type not in TYPES:
            self.fail(f"{where}: 不明な型 {item_type!r} です（{', '.join(TYPES)}）。")
        self.keys(obj, _COMMON_ITEM_KEYS | _TYPE_KEYS[item_type], {"id", "label", "type"}, where)
        label = self.text(obj, "label", where)
        required = obj.get("required", False)
        if not isinstance(required, bool):
            self.fail(f"{where}: 'required' は true か false です。")
        unit = self.text(obj, "unit", where, optional=True)
        help_text = self.text(obj, "help", where, optional=True)

        max_length = None
        if item_type in DEFAULT_MAX_LENGTH:
            max_length = obj.get("max_length", DEFAULT_MAX_LENGTH[item_type])
            if not _is_int(max_length) or not 1 <= max_length <= 100_000:
                self.fail(f"{where}: 'max_length' は1〜100000の整数でなければなりません。")

        low = high = places = None
        if item_type in ("integer", "decimal"):
            places = 0 if item_type == "integer" else obj.get("places", DEFAULT_PLACES)
            if not _is_int(places) or not 0 <= places <= MAX_PLACES:
                self.fail(f"{where}: 'places' は0〜{MAX_PLACES}の整数でなければなりません。")
            check = _is_int if item_type == "integer" else _is_number
            for key in ("min", "max"):
                if key in obj and not check(obj[key]):
                    kind_word = "整数" if item_type == "integer" else "数値"
                    self.fail(f"{where}: '{key}' は{kind_word}でなければなりません。")
            low, high = obj.get("min"), obj.get("max")
            if low is not None and high is not None and low > high:
                self.fail(f"{where}: 'min' が 'max' より大きくなっています。")
            if item_type == "decimal":
                for key, bound in (("min", low), ("max", high)):
                    if bound is not None and _exceeds_places(Decimal(str(bound)), places):
                        self.fail(f"{where}: '{key}' が小数点以下{places}桁を超えています。")

        codes: tuple = ()
        if item_type in ("choice", "multichoice"):
            if "codes" not in obj:
                self.fail(f"{where}: 型 {item_type} には 'codes'（選択肢）が必要です。")
            codes = self.codes(obj["codes"], where)
        elif item_type == "yesno":
            codes = self.codes(obj["codes"], where) if "codes" in obj else YESNO_CODES
            if sorted(c for c, _ in codes) != ["0", "1"]:
                self.fail(f"{where}: yesno の 'codes' は \"1\" と \"0\" の二つでなければなりません。")

        when = None
        if "when" in obj:
            when = self.condition(obj["when"], f"{where}: 'when'", f"{where} の 'when'", seen,
                                  "この項目より前にありません。")
        return Item(id=item_id, label=label, type=item_type, required=required, unit=unit, codes=codes, min=low,
                    max=high, places=places, max_length=max_length, when=when, help=help_text)

    def codes(self, obj, where) -> tuple[tuple[str, str], ...]:
        if not isinstance(obj, list) or not obj:
            self.fail(f"{where}: 'codes' は空でないリストでなければなりません。")
        parsed = []
        for entry in obj:
            if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                    or not _FORM_CODE_RE.fullmatch(entry[0]) or not _nonempty_str(entry[1])):
                self.fail(f"{where}: 'codes' の各要素は [\"コード\", \"表示名\"] で、コードは英数字の文字列です"
                          f"（{json.dumps(entry, ensure_ascii=False)}）。")
            parsed.append((entry[0], entry[1].strip()))
        codes = [c for c, _ in parsed]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            self.fail(f"{where}: コード {', '.join(duplicates)} が重複しています。")
        return tuple(parsed)

    def condition(self, obj, name, keys_where, items: dict, missing: str) -> dict:
        """A condition {"item": id, "in": [codes]} on one of `items` (an item's `when`, or `diagnosis_date`)."""
        self.keys(obj, {"item", "in"}, {"item", "in"}, keys_where)
        ref = obj["item"]
        if not isinstance(ref, str) or ref not in items:
            self.fail(f"{name} が参照する項目 {ref!r} は、{missing}")
        target = items[ref]
        if target.type not in CODED_TYPES:
            self.fail(f"{name} が参照できるのは choice / multichoice / yesno の項目です（{ref} は {target.type}）。")
        values = obj["in"]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            self.fail(f"{name} の 'in' はコード（文字列）の空でないリストでなければなりません。")
        unknown = [v for v in values if v not in target.code_labels]
        if unknown:
            self.fail(f"{name} の 'in' の {', '.join(unknown)} は項目 '{ref}' のコードにありません。")
        return {"item": ref, "in": list(values)}


def _directory(directory) -> Path:
    if directory is None:
        directory = os.environ.get("NANBYO_FORMDEFS_DIR") or DEFAULT_DIRECTORY
    return _resolved(str(directory))


@lru_cache(maxsize=64)
def _resolved(directory: str) -> Path:
    # Resolving reads the file system: once per directory, not at every lookup of a definition.
    return Path(directory).resolve()


class _Catalogue:
    def __init__(self, versions: dict[tuple[str, int], FormDefinition]):
        self.versions = dict(sorted(versions.items()))  # (code, version) -> definition
        by_code: dict[str, list[FormDefinition]] = {}
        for d in versions.values():
            by_code.setdefault(d.code, []).append(d)
        # code -> its versions, newest first
        self.by_code = {code: tuple(sorted(ds, key=lambda d: -d.version)) for code, ds in sorted(by_code.items())}
        self.definitions = {code: ds[0] for code, ds in self.by_code.items()}  # code -> newest version
        self.general: dict[str, str] = {}  # kind -> code of the general form
        self.by_disease: dict[tuple[str, object], str] = {}  # (kind, 告示番号 / shoman_code) -> code
        for d in versions.values():
            if d.general:
                self.general[d.kind] = d.code
            for key in d.diseases:
                self.by_disease[(d.kind, key)] = d.code

    def version_on(self, code: str, on: dt.date) -> FormDefinition | None:
        """The newest version of `code` whose valid_from is on or before `on`; None if none is valid yet."""
        for d in self.by_code[code]:
            if d.valid_from is None or d.valid_from <= on:
                return d
        return None


_cache: dict[Path, _Catalogue] = {}
_lock = threading.Lock()


def _file_name(defn: FormDefinition, newest: int) -> str:
    return f"{defn.code}.json" if defn.version == newest else f"{defn.code}.v{defn.version}.json"


def _read_directory(path: Path) -> _Catalogue:
    if not path.is_dir():
        raise DefinitionError(f"{path}: 定義ファイルのディレクトリがありません。")
    files = sorted(p for p in path.iterdir() if p.suffix == ".json" and not p.name.startswith(".") and p.is_file())
    parsed: list[tuple[Path, FormDefinition, bool]] = []
    for file in files:
        checker = _Checker(file)
        parsed.append((file, checker.parse(), checker.older))

    # Versions: <code>.json is the newest; every <code>.v<N>.json is an older version of it.
    newest = {defn.code: (file, defn) for file, defn, older in parsed if not older}
    for file, defn, older in parsed:
        if not older:
            continue
        if defn.code not in newest:
            raise DefinitionError(f"{file.name}: 旧版のファイルですが、最新版の {defn.code}.json がありません。"
                                  f"最新版は版番号を付けない {defn.code}.json に置きます。")
        current_file, current = newest[defn.code]
        if defn.version == current.version:
            raise DefinitionError(f"{file.name}: 様式 {defn.code} の版 {defn.version} は {current_file.name} にも"
                                  f"あります。一つの版は一つのファイルに置きます。")
        if defn.version > current.version:
            raise DefinitionError(f"{file.name}: 旧版のファイルの版 {defn.version} が {current_file.name} の版 "
                                  f"{current.version} より新しくなっています。最新版は {defn.code}.json に置き、旧版は"
                                  f"それより小さい版にしてください。")
        if defn.general != current.general:
            raise DefinitionError(f"{file.name}: {current_file.name} と汎用定義（general）かどうかが違います。"
                                  f"一つの様式コードの版はすべて汎用か、すべて個別定義です。")

    by_code: dict[str, list[tuple[Path, FormDefinition]]] = {}
    for file, defn, _ in parsed:
        by_code.setdefault(defn.code, []).append((file, defn))
    for versions in by_code.values():
        versions.sort(key=lambda fd: fd[1].version)
        latest_start: tuple[Path, dt.date] | None = None
        for file, defn in versions:
            if defn.valid_from is None:
                continue
            if latest_start is not None and defn.valid_from < latest_start[1]:
                raise DefinitionError(f"{file.name}: 'valid_from'（{defn.valid_from}）が旧版 {latest_start[0].name} の "
                                      f"'valid_from'（{latest_start[1]}）より前です。新しい版の使用開始日は旧版より後に"
                                      f"してください。")
            latest_start = (file, defn.valid_from)

    # Diseases: a disease maps to one code (the versions of a code share theirs); one general code per kind.
    mapped: dict[tuple[str, object], tuple[str, str]] = {}
    general: dict[str, str] = {}
    for file, defn, older in parsed:
        if defn.general and not older:
            if defn.kind in general:
                raise DefinitionError(f"{file.name}: {defn.kind} の汎用定義（general）は {general[defn.kind]}.json "
                                      f"にもあります。汎用定義は種別ごとに一つです。")
            general[defn.kind] = defn.code
        for key in defn.diseases:
            other = mapped.get((defn.kind, key))
            if other is not None and other[0] != defn.code:
                what = f"告示番号 {key}" if defn.kind == "nanbyo" else f"疾病コード {key}"
                raise DefinitionError(f"{file.name}: {what} は {other[1]} にも割り当てられて"
                                      f"います。一つの疾病に割り当てられる個別定義は一つです。")
            mapped.setdefault((defn.kind, key), (defn.code, file.name))
    for kind in KINDS:
        if kind not in general:
            raise DefinitionError(f"{path}: {kind} の汎用定義（\"diseases\": {{\"general\": true}}）がありません。")
    return _Catalogue({(defn.code, defn.version): defn for _, defn, _ in parsed})


def _catalogue(directory=None) -> _Catalogue:
    path = _directory(directory)
    with _lock:
        catalogue = _cache.get(path)
        if catalogue is None:
            catalogue = _cache[path] = _read_directory(path)
    return catalogue


def load_definitions(directory=None) -> dict[str, FormDefinition]:
    """The newest version of every definition in `directory` (default: <repo>/formdefs, or $NANBYO_FORMDEFS_DIR),
    by code. Older versions: :func:`all_versions`.

    Loaded once per directory and cached (call :func:`clear_cache` after changing files); every file is checked
    strictly and the first problem raises DefinitionError naming the file.
    """
    return dict(_catalogue(directory).definitions)


def all_versions(directory=None) -> dict[tuple[str, int], FormDefinition]:
    """Every version of every definition in `directory`, by (code, version), sorted."""
    return dict(_catalogue(directory).versions)


def clear_cache() -> None:
    """Forget loaded definitions, so the next call reads the files again (after adding or changing a file)."""
    with _lock:
        _cache.clear()
    _resolved.cache_clear()


def definition(code: str, version: int | None = None, directory=None) -> FormDefinition:
    """The definition with that code in that version (an int; a string of digits is accepted too), or the newest
    version without one. KeyError if there is no such code or version.

    A stored document passes the code and version it was written with, so it keeps its version after a newer one
    is added.
    """
    catalogue = _catalogue(directory)
    if version is None:
        return catalogue.definitions[code]
    if isinstance(version, str) and re.fullmatch(r"[0-9]{1,9}", version.strip()):
        version = int(version)
    return catalogue.versions[(code, version)]


def today_in_japan() -> dt.date:
    """Today in Japan (models._types.today_jst; formdefs and content_rules stand alone, without the models)."""
    return dt.datetime.now(_JST).date()


def _as_day(on) -> dt.date:
    if on is None:
        return today_in_japan()
    if isinstance(on, dt.datetime):
        return (on.astimezone(_JST) if on.tzinfo else on).date()
    if isinstance(on, dt.date):
        return on
    raise TypeError(f"on must be a date or None, not {type(on).__name__} (pass the directory as directory=...)")


def definition_for(kind: str, disease, on=None, directory=None) -> FormDefinition:
    """The form a new document for a disease uses on the day `on` (a date; None = today): the disease's specific
    definition, else the general one of that kind, in the newest version whose ``valid_from`` is on or before `on`
    (versions without valid_from are always valid).

    `disease`: a NanbyoDisease (matched on .notification_no, so subtypes share their 告示番号's form) or a
    ShomanDisease (matched on .shoman_code), a bare 告示番号 (int) / shoman_code (str), or None for the general form.
    When the disease's form has no version valid on `on` yet, or the version valid then no longer maps the disease,
    the general form is used; if no version of the general form is valid yet, its oldest version is used.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    day = _as_day(on)
    catalogue = _catalogue(directory)
    if disease is not None:
        attr = _DISEASE_KEYS[kind]
        key = disease if isinstance(disease, (int, str)) else getattr(disease, attr, None)
        if kind == "nanbyo" and isinstance(key, str) and key.strip().isdigit():
            key = int(key)
        code = catalogue.by_disease.get((kind, key)) if key is not None else None
        if code is not None:
            found = catalogue.version_on(code, day)
            if found is not None and key in found.diseases:
                return found
    general = catalogue.general[kind]
    return catalogue.version_on(general, day) or catalogue.by_code[general][-1]


def _known_versions(defn: FormDefinition) -> tuple[int, ...]:
    """The versions of defn's code in the loaded directory that holds `defn`; (defn.version,) if none does."""
    with _lock:
        catalogues = list(_cache.values())
    for catalogue in catalogues:
        if catalogue.versions.get((defn.code, defn.version)) is defn:
            return tuple(sorted(d.version for d in catalogue.by_code[defn.code]))
    return (defn.version,)


# ---------------------------------------------------------------------------------------------------------------
# Values


def _exceeds_places(value: Decimal, places: int) -> bool:
    return value != value.quantize(Decimal(1).scaleb(-places)) if value.is_finite() else True


def _fmt_number(value) -> str:
    d = Decimal(str(value))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _range_text(item: Item) -> str:
    low = None if item.min is None else _fmt_number(item.min)
    high = None if item.max is None else _fmt_number(item.max)
    if low is not None and high is not None:
        return f"{low}〜{high}の"
    if low is not None:
        return f"{low}以上の"
    if high is not None:
        return f"{high}以下の"
    return ""


def format_message(item: Item) -> str:
    """The Japanese message for a value of the wrong form (also used as the input hint)."""
    name = f"「{item.label}」"
    match item.type:
        case "text" | "textarea":
            return f"{name}: {item.max_length}文字以内で入力してください。"
        case "integer":
            return f"{name}: {_range_text(item)}整数で入力してください。"
        case "decimal":
            precision = "整数" if item.places == 0 else f"小数点以下{item.places}桁まで"
            return f"{name}: {_range_text(item)}数値（{precision}）で入力してください。"
        case "date":
            return f"{name}: 日付を正しく入力してください（例：2024-03-15）。"
        case "yearmonth":
            return f"{name}: 年月を正しく入力してください（例：2024-03）。"
        case _:
            return f"{name}: 選択肢にない値です。"


def required_message(item: Item) -> str:
    verb = "選択" if item.type in CODED_TYPES else "入力"
    return f"「{item.label}」を{verb}してください。"


def _normalise(value, *, multiline=False) -> str:
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)  # ASCII is NFKC already
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


_INT_RE = re.compile(r"-?(\d+|\d{1,3}(,\d{3})+)")
_DEC_RE = re.compile(r"-?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?|-?\.\d+")
_DATE_RE = re.compile(r"(\d{4})(?:[-/.]|年)(\d{1,2})(?:[-/.]|月)(\d{1,2})日?|(\d{4})(\d{2})(\d{2})")
_YM_RE = re.compile(r"(\d{4})(?:[-/.]|年)(\d{1,2})月?|(\d{4})(\d{2})")
_MIN_YEAR = 1900


def parse_date(value: str) -> dt.date | None:
    """A date as people type it (2026-04-01, 2026/4/1, 2026年4月1日, 20260401; NFKC-normalised text), or None."""
    m = _DATE_RE.fullmatch(value)
    if not m:
        return None
    y, mo, d = (int(g) for g in (m.groups()[:3] if m.group(1) else m.groups()[3:]))
    try:
        day = dt.date(y, mo, d)
    except ValueError:
        return None
    return day if y >= _MIN_YEAR else None


class _Bad(Exception):
    """A value of the wrong form; validate() turns it into the item's format message."""


def _clean_scalar(item: Item, value):
    """One non-empty value of a scalar item -> its clean form, or raise _Bad."""
    t = item.type
    if t in ("text", "textarea"):
        if _CONTROL_RE.search(value) or (t == "text" and _LINE_BREAK_RE.search(value)):
            raise _Bad(f"「{item.label}」: 使用できない文字（制御文字）が含まれています。")
        if len(value) > item.max_length:
            raise _Bad
        return value
    if t == "integer":
        if not _INT_RE.fullmatch(value) or len(value) > MAX_DIGITS + 6:
            raise _Bad
        number = int(value.replace(",", ""))
        if (item.min is not None and number < item.min) or (item.max is not None and number > item.max):
            raise _Bad
        return number
    if t == "decimal":
        if not _DEC_RE.fullmatch(value) or len(value) > MAX_DIGITS + 6:
            raise _Bad
        try:
            number = Decimal(value.replace(",", ""))
        except InvalidOperation:
            raise _Bad from None
        if _exceeds_places(number, item.places):
            raise _Bad
        if (item.min is not None and number < Decimal(str(item.min))) or \
                (item.max is not None and number > Decimal(str(item.max))):
            raise _Bad
        if number.as_tuple().exponent < -item.places:
            number = number.quantize(Decimal(1).scaleb(-item.places))
        if number == 0:
            number = abs(number)
        return format(number, "f")
    if t == "date":
        day = parse_date(value)
        if day is None:
            raise _Bad
        return day.isoformat()
    if t == "yearmonth":
        m = _YM_RE.fullmatch(value)
        if not m:
            raise _Bad
        y, mo = (int(g) for g in (m.groups()[:2] if m.group(1) else m.groups()[2:]))
        if y < _MIN_YEAR or not 1 <= mo <= 12:
            raise _Bad
        return f"{y:04d}-{mo:02d}"
    # choice, yesno
    if value not in item.code_labels:
        raise _Bad
    return value


def _as_text(item: Item, value) -> str | list | None:
    """A raw or stored value as normalised text (list for multichoice); None for a value of an unusable type."""
    if type(value) is str and item.type != "multichoice":  # what a form or a file sends: the usual case first
        return _normalise(value, multiline=item.type == "textarea")
    if value is None:
        return [] if item.type == "multichoice" else ""
    if item.type == "multichoice":
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return None
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                return None
            v = _normalise(str(v))
            if v:
                out.append(v)
        return out
    if isinstance(value, (list, tuple)):
        value = [v for v in value if v not in (None, "")]
        if len(value) > 1:
            return None
        value = value[0] if value else ""
    if isinstance(value, bool):
        return ("1" if value else "0") if item.type == "yesno" else None
    if isinstance(value, (dt.date,)) and not isinstance(value, dt.datetime) and item.type == "date":
        return value.isoformat()
    if isinstance(value, (int, float, Decimal)):
        if not isinstance(value, int) and item.type in ("integer", "choice", "yesno", "multichoice"):
            return None
        return _fmt_number(value) if item.type == "decimal" else str(value)
    if not isinstance(value, str):
        return None
    return _normalise(value, multiline=item.type == "textarea")


def _holds(condition: Mapping, values: Mapping) -> bool:
    """Whether a condition {"item": id, "in": [codes]} holds for clean values (multichoice: any chosen code)."""
    current = values.get(condition["item"])
    if current is None or current == "" or current == []:
        return False
    wanted = condition["in"]
    if isinstance(current, (list, tuple)):
        return any(str(v) in wanted for v in current)
    if isinstance(current, bool):
        current = "1" if current else "0"
    return str(current) in wanted


def _applies(item: Item, values: Mapping) -> bool:
    """Whether the item's `when` holds for the (clean) values of earlier items."""
    return item.when is None or _holds(item.when, values)


def diagnosis_date_required(defn: FormDefinition, values: Mapping) -> bool:
    """Whether the document's 診断年月日 is required with these (clean) item values: the form's ``diagnosis_date``
    is "required" (the default), "optional", or a condition on one of its choice / multichoice / yesno items."""
    if defn.diagnosis_date == "required":
        return True
    if defn.diagnosis_date == "optional":
        return False
    return _holds(defn.diagnosis_date, values)


_CODED_SCALARS = frozenset({"choice", "yesno"})


def validate(defn: FormDefinition, raw: Mapping, *, finalize: bool) -> tuple[dict, list[tuple[str, str]]]:
    """Clean `raw` (form strings or stored values) by the definition: (values, problems).

    values: JSON-serialisable, in definition order, without empty items and items whose `when` does not hold.
    problems: (item id, Japanese message). Format problems always; missing required items only when `finalize`.
    Keys of `raw` that are not items of the form are ignored.
    """
    values: dict = {}
    problems: list[tuple[str, str]] = []
    for item in defn.items:
        if item.when is not None and not _holds(item.when, values):  # _applies, inline: this runs per item
            continue
        value, kind = raw.get(item.id), item.type
        if kind in _CODED_SCALARS and type(value) is str and value.isascii():
            # What a form or a file sends for a choice or yes/no item, inline: this runs per item.
            code = value.strip()
            if code:
                if code in item.code_labels:
                    values[item.id] = code
                else:
                    problems.append((item.id, format_message(item)))
                continue
        text = _as_text(item, value)
        if text is None:
            problems.append((item.id, format_message(item)))
            continue
        if item.type == "multichoice":
            chosen = set(text)
            if chosen - set(item.code_labels):
                problems.append((item.id, format_message(item)))
                continue
            if chosen:
                values[item.id] = [c for c, _ in item.codes if c in chosen]
            elif item.required and finalize:
                problems.append((item.id, required_message(item)))
            continue
        if text == "":
            if item.required and finalize:
                problems.append((item.id, required_message(item)))
            continue
        try:
            values[item.id] = _clean_scalar(item, text)
        except _Bad as e:
            problems.append((item.id, e.args[0] if e.args else format_message(item)))
    return values, problems


def missing_required(defn: FormDefinition, values: Mapping) -> list[tuple[str, str]]:
    """validate(defn, values, finalize=True)'s problems when `values` are what validate() returned: clean values
    clean to themselves, so only the required items left out can be wrong; without cleaning every value again."""
    problems = []
    for item in defn.items:
        if item.when is not None and not _holds(item.when, values):
            continue
        if item.required and values.get(item.id) in (None, "", []):
            problems.append((item.id, required_message(item)))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Display (details screen, PDF)


def _with_unit(text: str, unit: str) -> str:
    if not unit or not text:
        return text
    return f"{text} {unit}" if unit[0].isascii() and unit[0].isalpha() else f"{text}{unit}"


def display_value(item: Item, value) -> str:
    """One stored value as text for people: code labels, units; "" for no value."""
    if value is None or value == "" or value == []:
        return ""
    labels = item.code_labels
    if item.type == "multichoice":
        values = value if isinstance(value, (list, tuple)) else [value]
        return "、".join(labels.get(str(v), str(v)) for v in values)
    if item.type in ("choice", "yesno"):
        if isinstance(value, bool):
            value = "1" if value else "0"
        return labels.get(str(value), str(value))
    return _with_unit(str(value), item.unit)


def display_sections(defn: FormDefinition, values: Mapping) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section title, [(item label, text)])] for the details screen and the print layout.

    Items whose `when` does not hold are left out; items without a value are shown as "" (the blank on paper).
    Sections left with no items are left out.
    """
    out = []
    for section in defn.sections:
        rows = [(item.label, display_value(item, values.get(item.id))) for item in section.items
                if _applies(item, values)]
        if rows:
            out.append((section.title, rows))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Entry form (WTForms)

FIELD_PREFIX = "item_"


def field_name(item: Item) -> str:
    return f"{FIELD_PREFIX}{item.id}"


def form_fields(defn: FormDefinition) -> dict:
    """Unbound WTForms fields, "item_<id>" -> field, without validators (validate() is the one rule).

    Use: ``type("F", (FlaskForm,), form_fields(defn))``. Labels carry the unit; descriptions carry the help text.
    """
    # Imported here: the check tool (nanbyo.xmlio) reads definitions without WTForms installed.
    from wtforms import RadioField, SelectField, SelectMultipleField, StringField, TextAreaField, widgets
    fields = {}
    for item in defn.items:
        label = item.label_with_unit
        kw: dict = {"description": item.help}
        render = {}
        if item.required:
            render["data-required"] = "1"
        if item.when:
            render["data-when-item"] = field_name(defn.item(item.when["item"]))
            render["data-when-in"] = " ".join(item.when["in"])
        match item.type:
            case "text":
                f = StringField(label, render_kw=render | {"maxlength": item.max_length}, **kw)
            case "textarea":
                f = TextAreaField(label, render_kw=render | {"maxlength": item.max_length, "rows": 4}, **kw)
            case "integer":
                f = StringField(label, render_kw=render | {"inputmode": "numeric", "autocomplete": "off"}, **kw)
            case "decimal":
                f = StringField(label, render_kw=render | {"inputmode": "decimal", "autocomplete": "off"}, **kw)
            case "date":
                f = StringField(label, render_kw=render | {"type": "date", "placeholder": "YYYY-MM-DD"}, **kw)
            case "yearmonth":
                f = StringField(label, render_kw=render | {"type": "month", "placeholder": "YYYY-MM"}, **kw)
            # Widgets. yesno and multichoice are option lists (radio buttons / check boxes): the `field` macro of
            # templates/_macros.html renders them as a <fieldset> of .form-check rows whose labels take the click.
            # choice stays a <select>, whatever its number of options: one native control that the mouse and the
            # keyboard handle alike, its 「（未選択）」 option clears it (a draft may be saved with nothing chosen),
            # and other code and tests address it as select[name=item_<id>]. Radio buttons would be friendlier for
            # short lists (≤ 6 options), but changing the widget of one type changes that interface for everybody:
            # a decision for all screens and tests at once, not for this fix.
            # Stored values do not depend on the widget: a choice / yesno posts one code or "" (nothing chosen),
            # a multichoice the list of checked codes (raw_from_form).
            case "choice":
                f = SelectField(label, choices=[UNSELECTED, *item.codes], validate_choice=False, render_kw=render,
                                **kw)
            case "multichoice":
                f = SelectMultipleField(label, choices=list(item.codes), validate_choice=False, render_kw=render,
                                        widget=widgets.ListWidget(prefix_label=False),
                                        option_widget=widgets.CheckboxInput(), **kw)
            case "yesno":  # an optional yesno can be cleared again: its 「未記入」 option posts ""
                choices = list(item.codes) if item.required else [*item.codes, ("", "未記入")]
                f = RadioField(label, choices=choices, validate_choice=False, render_kw=render,
                               widget=widgets.ListWidget(prefix_label=False), option_widget=widgets.RadioInput(),
                               **kw)
        fields[field_name(item)] = f
    return fields


def form_data(defn: FormDefinition, values: Mapping) -> dict:
    """Stored values -> data for the entry form: ``Form(data=form_data(defn, values))``."""
    data = {}
    for item in defn.items:
        value = values.get(item.id)
        if item.type == "multichoice":
            data[field_name(item)] = [str(v) for v in value] if isinstance(value, (list, tuple)) else []
        else:
            data[field_name(item)] = "" if value is None else str(value)
    return data


def raw_from_form(defn: FormDefinition, formdata) -> dict:
    """Posted form data (a werkzeug MultiDict, e.g. request.form) -> raw input for validate()."""
    raw = {}
    for item in defn.items:
        name = field_name(item)
        if item.type == "multichoice":
            if hasattr(formdata, "getlist"):
                raw[item.id] = list(formdata.getlist(name))
            else:
                value = formdata.get(name, [])
                raw[item.id] = list(value) if isinstance(value, (list, tuple)) else [value]
        else:
            value = formdata.get(name, "")
            raw[item.id] = "" if value is None else value
    return raw


# ---------------------------------------------------------------------------------------------------------------
# XML


def to_xml(defn: FormDefinition, values: Mapping) -> etree._Element:
    """``<items form="nanbyo-002" version="1"><item id="onset_ym" type="yearmonth">2024-03</item>…</items>``.

    Only items with a value (and whose `when` holds) appear, in definition order; a multichoice item holds one
    ``<value>`` per code.
    """
    root = etree.Element("items", form=defn.code, version=str(defn.version))
    for item in defn.items:
        value = values.get(item.id)
        if value is None or value == "" or value == [] or not _applies(item, values):
            continue
        node = etree.SubElement(root, "item", id=item.id, type=item.type)
        if item.type == "multichoice":
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                etree.SubElement(node, "value").text = str(v)
        elif isinstance(value, bool):
            node.text = "1" if value else "0"
        else:
            node.text = str(value)
    return root


def raw_from_xml(defn: FormDefinition, element) -> tuple[dict, list[tuple[str, str]]]:
    """An ``<items>`` element (as written by to_xml) -> (raw input for validate(), structural problems).

    Problems name a wrong form code or version, unknown or repeated item ids and a wrong type attribute; the values
    themselves are checked by validate(). The element must be of defn's code and version: to read a document of an
    older version, pass that version's definition (``definition(code, version)``).
    """
    problems: list[tuple[str, str]] = []
    raw: dict = {}
    version = element.get("version")
    if element.get("form") != defn.code:
        problems.append(("", f"様式コード {element.get('form')!r} は {defn.code} ではありません。"))
    elif version is None:
        problems.append(("", f"様式 {defn.code} の版（version 属性）がありません。"))
    elif version != str(defn.version):
        known = _known_versions(defn)
        if version in {str(v) for v in known}:  # a version that exists, read with another: the caller's mistake
            problems.append(("", f"様式 {defn.code} の版 {version} の項目を版 {defn.version} の定義で読もうとしました。"
                                 f"版 {version} の定義で読み込んでください。"))
        else:
            problems.append(("", f"様式 {defn.code} に版 {version!r} はありません（あるのは版 "
                                 f"{'、'.join(str(v) for v in known)}）。"))
    known = defn._by_id  # made once per definition
    for node in element.iterchildren("item"):
        item_id = node.get("id", "")
        item = known.get(item_id)
        if item is None:
            problems.append((item_id, f"項目 {item_id!r} は様式 {defn.code} にありません。"))
            continue
        if item_id in raw:
            problems.append((item_id, f"「{item.label}」が複数あります。"))
            continue
        if node.get("type") not in (None, item.type):
            problems.append((item_id, f"「{item.label}」の型は {item.type} です。"))
            continue
        if item.type == "multichoice":
            raw[item_id] = [(v.text or "") for v in node.iterchildren("value")]
        else:
            raw[item_id] = node.text or ""
    return raw, problems


# ---------------------------------------------------------------------------------------------------------------
# Check tool: python -m nanbyo.formdefs [directory] [--masters data/masters]


def unknown_diseases(definitions: Mapping, masters_dir) -> list[str]:
    """Disease numbers/codes the definitions map that the master CSV files do not contain (Japanese lines).

    `definitions`: load_definitions() or all_versions() (lines name the file of each version)."""
    import csv

    masters = Path(masters_dir)
    known: dict[str, set] = {"nanbyo": set(), "shoman": set()}
    with (masters / "nanbyo_diseases.csv").open(encoding="utf-8-sig", newline="") as f:
        known["nanbyo"] = {int(r["notification_no"]) for r in csv.DictReader(f)}
    with (masters / "shoman_diseases.csv").open(encoding="utf-8-sig", newline="") as f:
        known["shoman"] = {r["shoman_code"].strip() for r in csv.DictReader(f)}
    newest: dict[str, int] = {}
    for d in definitions.values():
        newest[d.code] = max(newest.get(d.code, 0), d.version)
    return [f"{_file_name(d, newest[d.code])}: {'告示番号' if d.kind == 'nanbyo' else '疾病コード'} {key} は"
            f"マスタにありません。"
            for d in definitions.values() for key in d.diseases if key not in known[d.kind]]


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nanbyo.formdefs", description="様式定義ファイルの検査")
    parser.add_argument("directory", nargs="?", default=None, help="定義ファイルのディレクトリ（既定: formdefs/）")
    parser.add_argument("--masters", default=str(DEFAULT_DIRECTORY.parent / "data" / "masters"),
                        help="疾病マスタ CSV のディレクトリ（疾病の割当を照合する）")
    args = parser.parse_args(argv)
    try:
        versions = all_versions(args.directory)
        newest = load_definitions(args.directory)
    except DefinitionError as e:
        print(f"NG: {e}", file=sys.stderr)
        return 1
    problems = unknown_diseases(versions, args.masters) if Path(args.masters).is_dir() else []
    for line in problems:
        print(f"NG: {line}", file=sys.stderr)
    for (code, version), d in sorted(versions.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        target = "汎用" if d.general else ", ".join(str(k) for k in d.diseases)
        notes = [] if newest[code] is d else [f"旧版 {_file_name(d, newest[code].version)}"]
        if d.valid_from:
            notes.append(f"使用開始 {d.valid_from}")
        if d.diagnosis_date == "optional":
            notes.append("診断年月日は任意")
        elif isinstance(d.diagnosis_date, dict):
            when = d.diagnosis_date
            notes.append(f"診断年月日は {when['item']} が {'/'.join(when['in'])} のとき必須")
        if d.patient_fields:
            notes.append(f"患者欄: {', '.join(d.patient_fields)}")
        print("\t".join([code, f"v{version}", f"{len(d.items)}項目", d.title, f"[{target}]", *notes]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
