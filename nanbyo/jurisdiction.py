"""実施主体 (jurisdiction): which 自治体 is responsible for which family of documents.

難病 実施主体 are the 都道府県 and 指定都市; 小慢 実施主体 are also the 中核市 and 児童相談所設置市. An institution answers
to one 実施主体 per family (a hospital in a 中核市: the prefecture for 難病, the city for 小慢), and a document goes
to the 実施主体 of the patient's residence. Kinds come from the municipality master (`kind` column).
"""
import unicodedata

from sqlalchemy import func, select

from models.institutions import Municipality
from nanbyo.document_codes import NANBYO, SHOMAN
from nanbyo.extensions import db

AUTHORITY_KINDS = {
    NANBYO: ("prefecture", "designated_city"),
    SHOMAN: ("prefecture", "designated_city", "core_city", "child_guidance_city"),
}
FAMILY_LABELS = {NANBYO: "難病", SHOMAN: "小慢"}


def is_authority(municipality, family) -> bool:
    return municipality is not None and municipality.kind in AUTHORITY_KINDS[family]


def authorities(family) -> list[Municipality]:
    """The 実施主体 of a family, in code order (the choices of a document's 提出先)."""
    return db.session.execute(select(Municipality).where(Municipality.kind.in_(AUTHORITY_KINDS[family]))
                              .order_by(Municipality.code)).scalars().all()


def institution_authority(institution, family) -> Municipality:
    return institution.shoman_municipality if family == SHOMAN else institution.municipality


def prefecture_of(municipality) -> Municipality | None:
    if municipality.kind == "prefecture":
        return municipality
    return db.session.execute(select(Municipality).filter_by(prefecture_no=municipality.prefecture_no,
                                                             kind="prefecture")).scalar_one_or_none()


def institution_problems(nanbyo_authority, shoman_authority) -> list[str]:
    """Why this pair cannot be an institution's 所管 (難病, 小慢); empty when it can."""
    if nanbyo_authority is None or shoman_authority is None:
        return ["所管自治体（難病・小慢）を選択してください。"]
    problems = []
    if not is_authority(nanbyo_authority, NANBYO):
        problems.append(f"{nanbyo_authority.name}は難病の実施主体ではありません（難病は都道府県・指定都市）。")
    if not is_authority(shoman_authority, SHOMAN):
        problems.append(f"{shoman_authority.name}は小慢の実施主体ではありません。")
    if problems:
        return problems
    if nanbyo_authority.kind == "designated_city" and shoman_authority.id != nanbyo_authority.id:
        problems.append(f"{nanbyo_authority.name}の医療機関は、小慢も{nanbyo_authority.name}の所管です。")
    elif shoman_authority.prefecture_no != nanbyo_authority.prefecture_no:
        problems.append("小慢の所管自治体は、難病の所管自治体と同じ都道府県の自治体を選択してください。")
    elif shoman_authority.kind == "designated_city":
        problems.append(f"{shoman_authority.name}の医療機関は、難病も{shoman_authority.name}の所管です。")
    return problems


def defaults_for(municipality) -> tuple[Municipality | None, Municipality]:
    """The (難病, 小慢) 所管 of an institution a municipality registers as its own: a 中核市 or 児童相談所設置市 has it
    for 小慢, its prefecture for 難病; a prefecture or 指定都市 for both (a prefecture then picks the 小慢 one)."""
    if municipality.kind in AUTHORITY_KINDS[NANBYO]:
        return municipality, municipality
    return prefecture_of(municipality), municipality


def _normalise_address(address: str) -> str:
    return "".join(unicodedata.normalize("NFKC", address or "").split())


def _named_at_start(text, *criteria):
    """The municipalities whose name begins `text`: the database compares, rather than ~1,900 rows read per call."""
    return db.session.execute(select(Municipality).where(
        func.substr(text, 1, func.length(Municipality.name)) == Municipality.name, *criteria)).scalars().all()


def authority_for_address(family, address) -> Municipality | None:
    """The 実施主体 of the patient's residence read off the address, or None when the address does not say
    (it does not start with a prefecture or a city of the master)."""
    text = _normalise_address(address)
    if not text:
        return None
    prefecture = next(iter(_named_at_start(text, Municipality.kind == "prefecture")), None)
    rest = text[len(prefecture.name):] if prefecture else text
    # Cities of the master within that prefecture; without one only cities (a ward name like 港区 is not unique).
    cities = [m for m in _named_at_start(rest, Municipality.kind != "prefecture")
              if (m.prefecture_no == prefecture.prefecture_no if prefecture else m.name.endswith("市"))]
    city = max(cities, key=lambda m: len(m.name), default=None)
    if city is not None and is_authority(city, family):
        return city
    if prefecture is None and city is not None:
        prefecture = prefecture_of(city)
    return prefecture
