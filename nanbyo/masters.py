"""Load the disease and municipality masters from CSV files (an operator action; never hard-coded).

Every file is read and checked before anything is written. A file that cannot be loaded (missing file or column, a
bad value, a duplicate key) raises MasterFileError naming the file and row, and nothing changes. A defect of the
content that the data can still be loaded with (a 疾患群 without diseases, a 小慢 code that disagrees with its group,
a code on several top-level rows, an unknown category) is returned as a Defect: the caller reports it, and loads
anyway or, strict, refuses (MasterDefectsError).
"""
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from models.institutions import Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo.extensions import db
from nanbyo.master_files import (MasterFileError, _municipality, _nanbyo_disease, _parse,  # noqa: F401
                                 _shoman_disease)

ATTRIBUTION = ("NANDO, Database Center for Life Science (DBCLS), licensed under CC-BY 4.0; "
               "指定難病病名一覧表, 厚生労働省, as published in 136s/intractable-disease, CC-BY 4.0")

# Defect kinds; the 小慢 ones are the `issue` values of data/masters/shoman_issues.csv.
GROUP_HAS_NO_DISEASES = "group_has_no_diseases"
CODE_PREFIX_DIFFERS = "code_prefix_differs_from_group_id"
SAME_SHOMAN_CODE = "same_code_on_several_top_level_rows"
UNKNOWN_GROUP = "unknown_group"
UNKNOWN_CATEGORY = "unknown_category"
SAME_NOTIFICATION_NO = "same_notification_no_on_several_top_level_rows"


@dataclass(frozen=True)
class Defect:
    """A defect of the masters' content: where (file, row), which code, what kind, and what is wrong in Japanese."""
    file: str
    row: int
    code: str
    kind: str
    message: str

    def __str__(self):
        return f"{self.file} {self.row}行目 {self.code}: {self.message}"


class MasterDefectsError(MasterFileError):
    """Strict loading refused: the masters have defects (nothing was changed)."""

    def __init__(self, defects: list[Defect]):
        self.defects = defects
        super().__init__(f"マスタに問題が {len(defects)} 件あります。何も変更していません。")


def _check_unique(name: str, key: str, rows: list[tuple[int, dict]]):
    """The upsert key must be unique in the file; the second row with a key names both rows."""
    first = {}
    for lineno, data in rows:
        if data[key] in first:
            raise MasterFileError(f"{name} {lineno}行目: {key} {data[key]} が {first[data[key]]}行目と重複しています。")
        first[data[key]] = lineno


def _upsert(model, key, rows: list[tuple[int, dict]]):
    existing = {getattr(o, key): o for o in db.session.execute(select(model)).scalars()}
    created = updated = 0
    for _lineno, data in rows:
        obj = existing.get(data[key])
        if obj is None:
            db.session.add(model(**data))
            created += 1
            continue
        changed = {k: v for k, v in data.items() if getattr(obj, k) != v}
        for k, v in changed.items():
            setattr(obj, k, v)
        updated += bool(changed)
    return created, updated


# --- reading ---------------------------------------------------------------------------------------------------------

def _read(directory: Path) -> dict[str, tuple[object, str, list[tuple[int, dict]]]]:
    """{file: (model, key, rows)} in loading order; raises MasterFileError on the first file that cannot load."""
    files = {
        "municipalities.csv": (Municipality, "code", _parse(
            directory, "municipalities.csv", {"local_government_code", "name", "prefecture_no", "kind"},
            _municipality)),
        "nanbyo_categories.csv": (NanbyoCategory, "id", _parse(
            directory, "nanbyo_categories.csv", {"category_id", "name_ja", "name_en"},
            lambda r: {"id": int(r["category_id"]), "name_ja": r["name_ja"], "name_en": r["name_en"]})),
        "nanbyo_diseases.csv": (NanbyoDisease, "nando_id", _parse(
            directory, "nanbyo_diseases.csv",
            {"nando_id", "notification_no", "is_subtype", "category_id", "name_ja", "since"}, _nanbyo_disease)),
        "shoman_groups.csv": (ShomanGroup, "group_id", _parse(
            directory, "shoman_groups.csv", {"group_id", "name_ja"},
            lambda r: {"group_id": r["group_id"], "name_ja": r["name_ja"], "name_en": r.get("name_en", "")})),
        "shoman_diseases.csv": (ShomanDisease, "nando_id", _parse(
            directory, "shoman_diseases.csv", {"nando_id", "shoman_code", "group_id", "notification_no", "name_ja"},
            _shoman_disease)),
    }
    for name, (_model, key, rows) in files.items():
        _check_unique(name, key, rows)
    return files


# --- defects ---------------------------------------------------------------------------------------------------------

def _several(file, code_of, rows, kind, what):
    """One defect per row of a code that is on several of `rows`; each names all those rows."""
    by_code = defaultdict(list)
    for lineno, data in rows:
        by_code[code_of(data)].append(lineno)
    return [Defect(file, lineno, str(code), kind,
                   f"{what} {code} が最上位の複数の行（{', '.join(f'{n}行目' for n in linenos)}）にあります")
            for code, linenos in by_code.items() if len(linenos) > 1 for lineno in linenos]


def _nanbyo_defects(categories, diseases) -> list[Defect]:
    file = "nanbyo_diseases.csv"
    known = {data["id"] for _, data in categories}
    defects = [Defect(file, lineno, data["nando_id"], UNKNOWN_CATEGORY,
                      f"疾患分類 {data['category_id']} が nanbyo_categories.csv にありません")
               for lineno, data in diseases if data["category_id"] is not None and data["category_id"] not in known]
    top_level = [(lineno, data) for lineno, data in diseases if not data["is_subtype"]]
    defects += _several(file, lambda d: d["notification_no"], top_level, SAME_NOTIFICATION_NO, "告示番号")
    return defects


def _code_prefix(code: str):
    """(疾患群, 大分類) of a 小慢 code like 01_05_041, or None when it has no such prefix."""
    parts = code.split("_")
    return (int(parts[0]), int(parts[1])) if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() else None


def _group_prefix(group_id: str):
    """(疾患群, 大分類) of a group id like 1-6, or None."""
    parts = group_id.split("-")
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() else None


def _shoman_defects(groups, diseases) -> list[Defect]:
    file = "shoman_diseases.csv"
    known = {data["group_id"] for _, data in groups}
    defects = []
    for lineno, data in diseases:
        code, group_id = data["shoman_code"], data["group_id"]
        if group_id not in known:
            defects.append(Defect(file, lineno, code, UNKNOWN_GROUP, f"大分類 {group_id} が shoman_groups.csv にありません"))
        prefix = _code_prefix(code)
        if prefix is None or prefix != _group_prefix(group_id):
            defects.append(Defect(file, lineno, code, CODE_PREFIX_DIFFERS,
                                  f"疾病コードの先頭（{'_'.join(code.split('_')[:2])}）が大分類（{group_id}）と一致しません"))
    # Top level: a disease, not a subtype of one (whose nando_id is the disease's with a "-" suffix).
    top_level = [(lineno, data) for lineno, data in diseases if "-" not in data["nando_id"]]
    defects += _several(file, lambda d: d["shoman_code"], top_level, SAME_SHOMAN_CODE, "疾病コード")
    # A 疾患群 (group id without "-") whose 大分類 have no disease.
    used = {data["group_id"].split("-")[0] for _, data in diseases}
    defects += [Defect("shoman_groups.csv", lineno, data["group_id"], GROUP_HAS_NO_DISEASES,
                       f"疾患群（{data['name_ja']}）に疾病が1件もありません")
                for lineno, data in groups if "-" not in data["group_id"] and data["group_id"] not in used]
    return defects


def _defects(files) -> list[Defect]:
    """The defects of the content read by _read, in file and row order."""
    defects = (_nanbyo_defects(files["nanbyo_categories.csv"][2], files["nanbyo_diseases.csv"][2])
               + _shoman_defects(files["shoman_groups.csv"][2], files["shoman_diseases.csv"][2]))
    order = list(files)
    return sorted(defects, key=lambda d: (order.index(d.file), d.row, d.kind))


# --- loading ---------------------------------------------------------------------------------------------------------

def load_masters(directory, strict=False) -> tuple[dict[str, tuple[int, int]], list[Defect]]:
    """Upsert every master in `directory` into the current transaction; the caller commits (the CLI together with
    its log entry). All or nothing: on a bad file everything is rolled back.

    Returns ({file: (created, updated)}, defects). Defects are loaded as they are, unless `strict`: then
    MasterDefectsError is raised and nothing changes."""
    directory = Path(directory)
    report = {}
    try:
        files = _read(directory)
        defects = _defects(files)
        if strict and defects:
            raise MasterDefectsError(defects)
        for name, (model, key, rows) in files.items():
            report[name] = _upsert(model, key, rows)
        db.session.flush()
    except (ValueError, KeyError):
        db.session.rollback()
        raise
    return report, defects
