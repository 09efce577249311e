"""Reading the master CSV files (data/masters/): rows checked and converted, no database. nanbyo.masters loads them
into the database; the offline check tool (nanbyo.xmlio.check) reads the diseases from them directly."""
import csv
import re
from datetime import date
from pathlib import Path

from nanbyo.codes import municipality_code_error
from nanbyo.resources import resource

DIRECTORY = resource("data/masters")
KIND_MAP = {"prefecture": "prefecture", "designated_city": "designated_city", "core_city": "core_city",
            "child_guidance_city": "child_guidance_city", "other": "other"}


class MasterFileError(ValueError):
    pass


class _BadValue(ValueError):
    """A value the row cannot be loaded with; the message says why (the file and row are added)."""


def _rows(directory: Path, name: str, required: set[str]):
    path = directory / name
    if not path.exists():
        raise MasterFileError(f"{name} がありません（{directory}）。")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise MasterFileError(f"{name}: 列 {', '.join(sorted(missing))} がありません。")
        for lineno, row in enumerate(reader, start=2):
            yield lineno, {k: (v or "").strip() for k, v in row.items() if k is not None}


def _parse(directory: Path, name: str, required: set[str], convert) -> list[tuple[int, dict]]:
    """(row number, `convert`ed row) of one file; a value that does not convert names its file and row."""
    values = []
    for lineno, r in _rows(directory, name, required):
        try:
            values.append((lineno, convert(r)))
        except _BadValue as e:
            raise MasterFileError(f"{name} {lineno}行目: {e}") from e
        except ValueError as e:
            raise MasterFileError(f"{name} {lineno}行目: 数値の列に数値でない値があります（{e}）。") from e
    return values


def _date(value: str) -> date | None:
    """An ISO date (YYYY-MM-DD); empty is None."""
    if not value:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _BadValue(f"日付（since）は YYYY-MM-DD で書きます（{value}）。") from None


def _municipality(r):
    error = municipality_code_error(r["local_government_code"])
    if error:
        raise _BadValue(error)
    if r["kind"] not in KIND_MAP:
        raise _BadValue(f"種別 {r['kind']} が不明です。")
    return {"code": r["local_government_code"], "name": r["name"], "prefecture_no": r["prefecture_no"],
            "kind": KIND_MAP[r["kind"]]}


def _nanbyo_disease(r):
    is_subtype = r["is_subtype"] == "1"
    notification_no = int(r["notification_no"])
    nando_id = r["nando_id"]
    if not nando_id:
        # 告示番号 added after the last NANDO release have no NANDO id; the top-level NANDO id of a 指定難病 is its
        # 告示番号, so that is the key (a later file with the NANDO id updates the same row).
        if is_subtype:
            raise _BadValue("細分類（is_subtype=1）に nando_id がありません。")
        nando_id = str(notification_no)
    return {"nando_id": nando_id, "notification_no": notification_no, "is_subtype": is_subtype,
            "category_id": int(r["category_id"]) if r["category_id"] else None,
            "name_ja": r["name_ja"], "name_en": r.get("name_en", ""), "since": _date(r["since"])}


def _shoman_disease(r):
    if not r["nando_id"]:
        raise _BadValue("nando_id がありません。")
    return {"nando_id": r["nando_id"], "shoman_code": r["shoman_code"], "group_id": r["group_id"],
            "notification_no": int(r["notification_no"]) if r["notification_no"] else None,
            "name_ja": r["name_ja"], "name_en": r.get("name_en", "")}


def nanbyo_diseases(directory=DIRECTORY) -> list[dict]:
    """The 指定難病 rows of nanbyo_diseases.csv, converted (notification_no, name_ja, since …)."""
    return [data for _lineno, data in _parse(
        Path(directory), "nanbyo_diseases.csv",
        {"nando_id", "notification_no", "is_subtype", "category_id", "name_ja", "since"}, _nanbyo_disease)]


def shoman_diseases(directory=DIRECTORY) -> list[dict]:
    """The rows of shoman_diseases.csv, converted (shoman_code, name_ja …)."""
    return [data for _lineno, data in _parse(
        Path(directory), "shoman_diseases.csv", {"nando_id", "shoman_code", "group_id", "notification_no", "name_ja"},
        _shoman_disease)]
