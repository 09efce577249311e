"""Load the disease and municipality masters from CSV files (an operator action; never hard-coded)."""
import csv
from pathlib import Path

from sqlalchemy import select

from models.institutions import Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo.codes import municipality_code_error
from nanbyo.extensions import db

ATTRIBUTION = "NANDO, Database Center for Life Science (DBCLS), licensed under CC-BY 4.0"
KIND_MAP = {"prefecture": "prefecture", "designated_city": "designated_city", "core_city": "core_city",
            "other": "other"}


class MasterFileError(ValueError):
    pass


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
            yield lineno, {k: (v or "").strip() for k, v in row.items()}


def _parse(directory: Path, name: str, required: set[str], convert) -> list[dict]:
    """The rows of one file through `convert`; a value that does not convert names its file and row."""
    values = []
    for lineno, r in _rows(directory, name, required):
        try:
            values.append(convert(r))
        except ValueError as e:
            raise MasterFileError(f"{name} {lineno}行目: 数値の列に数値でない値があります（{e}）。") from e
    return values


def _upsert(model, key, values):
    existing = {getattr(o, key): o for o in db.session.execute(select(model)).scalars()}
    created = updated = 0
    for data in values:
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


def load_masters(directory) -> dict[str, tuple[int, int]]:
    """Upsert every master in `directory` into the current transaction; the caller commits (the CLI together with
    its log entry). All or nothing: on a bad file everything is rolled back. Returns {file: (created, updated)}."""
    directory = Path(directory)
    report = {}
    try:
        municipalities = []
        for lineno, r in _rows(directory, "municipalities.csv", {"local_government_code", "name", "prefecture_no", "kind"}):
            error = municipality_code_error(r["local_government_code"])
            if error:
                raise MasterFileError(f"municipalities.csv {lineno}行目: {error}")
            if r["kind"] not in KIND_MAP:
                raise MasterFileError(f"municipalities.csv {lineno}行目: 種別 {r['kind']} が不明です。")
            municipalities.append({"code": r["local_government_code"], "name": r["name"],
                                   "prefecture_no": r["prefecture_no"], "kind": KIND_MAP[r["kind"]]})
        report["municipalities.csv"] = _upsert(Municipality, "code", municipalities)

        categories = _parse(directory, "nanbyo_categories.csv", {"category_id", "name_ja", "name_en"},
                            lambda r: {"id": int(r["category_id"]), "name_ja": r["name_ja"], "name_en": r["name_en"]})
        report["nanbyo_categories.csv"] = _upsert(NanbyoCategory, "id", categories)

        diseases = _parse(directory, "nanbyo_diseases.csv",
                          {"nando_id", "notification_no", "is_subtype", "category_id", "name_ja"},
                          lambda r: {"nando_id": r["nando_id"], "notification_no": int(r["notification_no"]),
                                     "is_subtype": r["is_subtype"] == "1",
                                     "category_id": int(r["category_id"]) if r["category_id"] else None,
                                     "name_ja": r["name_ja"], "name_en": r["name_en"]})
        report["nanbyo_diseases.csv"] = _upsert(NanbyoDisease, "nando_id", diseases)

        groups = _parse(directory, "shoman_groups.csv", {"group_id", "name_ja"},
                        lambda r: {"group_id": r["group_id"], "name_ja": r["name_ja"], "name_en": r.get("name_en", "")})
        report["shoman_groups.csv"] = _upsert(ShomanGroup, "group_id", groups)

        shoman = _parse(directory, "shoman_diseases.csv",
                        {"nando_id", "shoman_code", "group_id", "notification_no", "name_ja"},
                        lambda r: {"nando_id": r["nando_id"], "shoman_code": r["shoman_code"],
                                   "group_id": r["group_id"],
                                   "notification_no": int(r["notification_no"]) if r["notification_no"] else None,
                                   "name_ja": r["name_ja"], "name_en": r.get("name_en", "")})
        report["shoman_diseases.csv"] = _upsert(ShomanDisease, "nando_id", shoman)
        db.session.flush()
    except (ValueError, KeyError):
        db.session.rollback()
        raise
    return report
