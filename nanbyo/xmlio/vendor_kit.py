"""The vendor package: what a hospital system's vendor needs to write the XML and check it, as one ZIP.

Everything in it is generated from what the application itself uses, never typed twice: the schemas (xsd/), the
record definitions from the contract and the form definitions (formdefs/), the code tables from nanbyo.document_codes,
the forms and the masters (data/masters/), a valid sample document of every form written by the contract's writer,
invalid samples with the messages the check gives them (the check is run on each), and the check's rules with its
limits. `make vendor-kit` writes it (`python -m nanbyo.xmlio.vendor_kit DIR`); the documents screen offers the same
ZIP to those who write documents.

    README.md                  what is where, the contract's version, how to run the check
    xsd/                       documents-1.xsd, form-items-1.xsd
    record-definition.xlsx/.md ファイルレコード定義書: every element and attribute, and every item of every form
    codes.xlsx, codes/*.csv    コード表 (CSV: UTF-8 with BOM)
    samples/valid/*.xml        one valid document per form
    samples/invalid/*.xml      documents the check refuses, with its messages in samples/invalid/README.md
    rules.md                   検査ルール, in Japanese
"""
import csv
import io
import sys
import zipfile
from dataclasses import replace
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook

from nanbyo import formdefs
from nanbyo.content_rules import Content, patient_fields
from nanbyo.document_codes import (ALL_PATIENT_FIELDS, APPLICATION_KINDS,
                                   EXPLANATION_LABELS, INSURANCE_FIELDS, INSURANCE_KIND_LABELS, KIND_LABELS, NANBYO,
                                   PATIENT_REQUIRED, SEX_LABELS, SHOMAN, application_kind_label)
from nanbyo.roles import DOCTOR_KIND_LABELS
from nanbyo.xmlio import archive, check, contract, reader
from nanbyo.xmlio.writer import document_element, file_bytes

SAMPLE_DAY = date(2026, 11, 2)  # 作成年月日 of the samples (their forms' versions are those in force that day)
TYPE_LABELS = {"text": "文字", "textarea": "文字（複数行）", "integer": "整数", "decimal": "小数", "date": "日付（YYYY-MM-DD）",
               "yearmonth": "年月（YYYY-MM）", "choice": "コード（1つ）", "multichoice": "コード（複数: value 要素を繰り返す）",
               "yesno": "コード（1 あり / 0 なし）"}


# --- samples -------------------------------------------------------------------------------------------------------

def sample_diseases():
    """(kind, disease code) for every form: each specific form's first disease, and for each general form the first
    disease without a form of its own."""
    out, mapped = [], set()
    for definition in sorted(formdefs.load_definitions().values(), key=lambda d: d.code):
        if not definition.general:
            out.append((definition.kind, str(definition.diseases[0])))
            mapped |= {(definition.kind, str(d)) for d in definition.diseases}
    diseases = check.diseases_in()
    for kind in formdefs.KINDS:
        out.append(next(key for key in sorted(diseases) if key[0] == kind and key not in mapped))
    return out


def _sample_values(definition):
    """Values that pass the definition's finalize checks (nanbyo.demo.sample_values, without the database)."""
    from nanbyo.demo import sample_values
    values, problems = formdefs.validate(definition, sample_values(definition), finalize=True)
    assert not problems, (definition.code, problems)
    return values


def sample_content(kind, code, on=SAMPLE_DAY) -> Content:
    disease = check.diseases_in()[(kind, code)]
    definition = formdefs.definition_for(kind, check.disease_key(kind, disease), on=on)
    patient = {"family_name": "山田", "given_name": "花子", "family_kana": "ヤマダ", "given_kana": "ハナコ", "sex": "2",
               "birth_date": "2015-04-01" if kind == SHOMAN else "1980-04-01", "postal_code": "1600023",
               "address": "東京都新宿区西新宿二丁目8番1号", "insurance_kind": "national", "insurer_number": "123456",
               "insured_symbol": "記号1", "insured_number": "1234"}
    return Content(kind=kind, application_kind="new", definition=definition, disease=disease,
                   diagnosed_on=on - timedelta(days=30), written_on=on, explained_on=on, explanation="agreed",
                   patient={k: v for k, v in patient.items() if k in patient_fields(definition)},
                   items=_sample_values(definition))


def sample_element(kind, code, content=None):
    return document_element(content or sample_content(kind, code), disease_code=code, doctor_number="13-N-0101",
                            doctor_name="見本 太郎", institution_code="1310000017", doctor_designation=kind)


def _changed(change, kind=NANBYO, code="6", **fields):
    element = sample_element(kind, code, replace(sample_content(kind, code), **fields) if fields else None)
    if change:
        change(element)
    return file_bytes([element])


def _set(path, text=None, **attributes):
    def change(element):
        node = element.find(path)
        if text is not None:
            node.text = text
        for name, value in attributes.items():
            node.set(name, value)
    return change


def _drop(path):
    return lambda element: element.find(path).getparent().remove(element.find(path))


def invalid_samples():
    """(file name, what is wrong, file bytes): documents the check refuses."""
    first_required = next(i for i in sample_content(NANBYO, "6").definition.items if i.required and not i.when)
    return [
        ("date-format.xml", "作成年月日の書き方", _changed(_set("written_on", "2026/11/02"))),
        ("unknown-disease.xml", "マスタにない告示番号", _changed(_set("disease", "999"))),
        ("wrong-form.xml", "疾病の様式ではない様式", _changed(_set("items", form="nanbyo-general", version="1"))),
        ("missing-item.xml", "必須の疾病別項目がない", _changed(_drop(f"items/item[@id='{first_required.id}']"))),
        ("explanation-declined.xml", "DB登録に同意しない", _changed(_set("explanation", answer="declined"))),
        ("shoman-age.xml", "小慢の新規で18歳以上", _changed(_set("patient/birth_date", "2007-04-01"), SHOMAN, "01_01_001")),
        ("kana.xml", "カナがカタカナでない", _changed(_set("patient/family_kana", "yamada"))),
        ("application-kind.xml", "小慢に軽症者登録", _changed(_set("application_kind", "mild"), SHOMAN, "01_01_001")),
        ("doctor-number.xml", "指定医番号の形式", _changed(_set("doctor", number="13 N 0101"))),
        ("kyoryoku-new.xml", "協力難病指定医の新規の臨床調査個人票",
         _changed(_set("doctor", designation="nanbyo_kyoryoku"), application_kind="new")),
        ("future-date.xml", "未来の作成年月日", _changed(_set("written_on", "2099-01-01"))),
        ("version.xml", "対応していない版", _changed(None).replace(b'version="1"', b'version="9"', 1)),
        ("doctype.xml", "DOCTYPE（実体宣言）", b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE documents [<!ENTITY x '
         b'SYSTEM "file:///etc/passwd">]>\n<documents version="1">&x;</documents>\n'),
    ]


# --- record definitions and codes ----------------------------------------------------------------------------------

def _envelope_rows():
    """(XPath, 項目名, 型・形式, 必須, コード表, 説明) of every element and attribute of the contract."""
    rows = [
        ("/documents/@version", "XMLの版", f"文字（{'・'.join(contract.VERSIONS)}）", "必須", "", "この定義の版"),
        ("/documents/document", "書類", "要素", "必須", "", f"1ファイルに1〜{contract.MAX_DOCUMENTS:,}件"),
        ("document/kind", "書類の種類", "コード", "必須", "kinds", ""),
        ("document/application_kind", "申請区分", "コード", "必須", "application_kinds", "書類の種類ごとに使える区分が違う"),
        ("document/disease", "疾病", "文字（難病: 告示番号 1〜3桁 / 小慢: 疾病コード NN_NN_NNN）", "必須",
         "nanbyo_diseases, shoman_diseases", "作成年月日に指定難病であること"),
        ("document/written_on", "作成年月日", "日付（YYYY-MM-DD）", "必須", "", "未来の日付は不可"),
        ("document/diagnosed_on", "診断年月日", "日付（YYYY-MM-DD）", "様式による", "",
         "様式の diagnosis_date（forms の列）が必須のとき。作成年月日以前・生年月日以後"),
        ("document/explanation/@answer", "説明（DB登録）への回答", "コード", "必須", "explanation_answers",
         "同意しない（declined）場合はオンラインで作成できない"),
        ("document/explanation/@on", "説明日", "日付（YYYY-MM-DD）", "必須", "", ""),
        ("document/doctor/@number", "指定医番号", "英数字とハイフン 20文字以内", "必須", "", ""),
        ("document/doctor/@name", "指定医氏名", f"文字 {contract.TEXT_MAX}文字以内", "必須", "", ""),
        ("document/doctor/@designation", "指定医の区分", "コード", "任意", "doctor_kinds",
         "指定医番号の指定の区分。書くと、その区分で作成できる書類か検査する（協力難病指定医は更新の臨床調査個人票だけ）"),
        ("document/institution/@code", "医療機関コード", "数字10桁", "必須", "", ""),
        ("document/institution/@name", "医療機関名", "文字 200文字以内", "任意", "",
         "紙の書類のデータだけ: 未登録の医療機関の名称（院内システムのXMLには不要）"),
        ("document/scan/@id", "スキャンファイル No.", "数字 12桁以内（要素は10個まで）", "任意", "",
         "紙の書類のデータだけ（運営主体の取込）: データ化した元のスキャンファイルの No.。院内システムのXMLに書くと取り込めない"),
        ("document/patient", "患者", "要素", "必須", "", "次の要素を任意の順で"),
    ]
    codes = {"sex": "sex", "insurance_kind": "insurance_kinds"}
    shapes = {"birth_date": "日付（YYYY-MM-DD）", "postal_code": "数字7桁（ハイフンは除いて読む）",
              "insurer_number": "数字6桁または8桁", "family_kana": "カタカナ", "given_kana": "カタカナ"}
    for key, label in ALL_PATIENT_FIELDS.items():
        kind = shapes.get(key) or ("コード" if key in codes else f"文字 {contract.TEXT_MAX}文字以内")
        note = "保険の欄がある様式だけ（forms の patient_fields）" if key in INSURANCE_FIELDS else ""
        rows.append((f"document/patient/{key}", label, kind, "必須" if key in PATIENT_REQUIRED else "任意",
                     codes.get(key, ""), note))
    rows += [
        ("document/items/@form", "様式コード", "文字", "必須", "forms", "疾病と作成年月日で決まる様式"),
        ("document/items/@version", "様式の版", "整数", "必須", "forms", ""),
        ("document/items/item", "疾病別の項目", "要素（@id, @type）", "様式による", "",
         "様式ごとのシート・表（record-definition の items_<様式>）"),
    ]
    return rows


def _condition_text(definition, item):
    if not item.when:
        return ""
    source = definition.item(item.when["item"])
    labels = source.code_labels
    wanted = "・".join(f"{code}（{labels.get(code, code)}）" for code in item.when["in"])
    return f"「{source.label}」が {wanted} のとき"


def _range_text(item):
    parts = []
    if item.min is not None or item.max is not None:
        parts.append(f"{'' if item.min is None else item.min}〜{'' if item.max is None else item.max}")
    if item.type == "decimal":
        parts.append(f"小数 {item.places if item.places is not None else formdefs.DEFAULT_PLACES}桁まで")
    if item.type in formdefs.DEFAULT_MAX_LENGTH:
        parts.append(f"{item.max_length or formdefs.DEFAULT_MAX_LENGTH[item.type]}文字以内")
    return "、".join(parts)


def _item_rows(definition):
    return [(item.id, item.label, TYPE_LABELS[item.type], item.unit, "必須" if item.required else "任意",
             _condition_text(definition, item), _range_text(item),
             " / ".join(f"{code}={label}" for code, label in item.codes))
            for item in definition.items]


def _forms():
    return sorted(formdefs.all_versions().values(), key=lambda d: (d.kind, d.code, d.version))


def code_tables():
    """{name: (headings, rows)}."""
    diseases = check.diseases_in()
    return {
        "kinds": (["コード", "名称"], list(KIND_LABELS.items())),
        "application_kinds": (["書類の種類", "コード", "名称"],
                              [(kind, code, application_kind_label(kind, code))
                               for kind in (NANBYO, SHOMAN) for code in APPLICATION_KINDS[kind]]),
        "sex": (["コード", "名称"], list(SEX_LABELS.items())),
        "insurance_kinds": (["コード", "名称"], list(INSURANCE_KIND_LABELS.items())),
        "explanation_answers": (["コード", "名称"], list(EXPLANATION_LABELS.items())),
        "doctor_kinds": (["コード", "名称"], list(DOCTOR_KIND_LABELS.items())),
        "nanbyo_diseases": (["告示番号", "名称", "指定難病となった日"],
                            sorted(((int(code), d.name_ja, d.since.isoformat() if d.since else "")
                                    for (kind, code), d in diseases.items() if kind == NANBYO))),
        "shoman_diseases": (["疾病コード", "名称", "大分類"],
                            [(code, d.name_ja, d.group_id) for (kind, code), d in sorted(diseases.items())
                             if kind == SHOMAN]),
        "forms": (["様式コード", "版", "書類の種類", "名称", "適用開始日", "疾病", "診断年月日", "保険の欄"],
                  [(d.code, d.version, d.kind, d.title, d.valid_from.isoformat() if d.valid_from else "",
                    "汎用（個別の様式がない疾病）" if d.general else "・".join(str(x) for x in d.diseases),
                    d.diagnosis_date if isinstance(d.diagnosis_date, str) else "条件付き",
                    "あり" if "insurance" in d.patient_fields else "") for d in _forms()]),
        "item_codes": (["様式コード", "版", "項目ID", "コード", "名称"],
                       [(d.code, d.version, item.id, code, label)
                        for d in _forms() for item in d.items for code, label in item.codes]),
    }


ENVELOPE_HEADINGS = ["XPath", "項目名", "型・形式", "必須", "コード表", "説明"]
ITEM_HEADINGS = ["項目ID", "項目名", "型", "単位", "必須", "条件", "範囲・桁", "コード"]


def record_definition_xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "書類"
    sheet.append(ENVELOPE_HEADINGS)
    for row in _envelope_rows():
        sheet.append(list(row))
    for definition in _forms():
        sheet = book.create_sheet(f"items_{definition.code}_v{definition.version}"[:31])
        sheet.append([f"{definition.code} 版 {definition.version}: {definition.title}"])
        sheet.append(ITEM_HEADINGS)
        for row in _item_rows(definition):
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _md_table(headings, rows):
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headings) + " |", "| " + " | ".join("---" for _ in headings) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record_definition_md() -> str:
    parts = [f"# ファイルレコード定義書（臨床調査個人票・医療意見書 XML 版 {contract.VERSION}）", "",
             "文字コードは UTF-8（BOM 可）または Shift_JIS（XML宣言で指定）。名前空間なし。", "", "## 書類", "",
             _md_table(ENVELOPE_HEADINGS, _envelope_rows())]
    for definition in _forms():
        parts += ["", f"## items_{definition.code}_v{definition.version}: {definition.title}（版 {definition.version}）",
                  "", _md_table(ITEM_HEADINGS, _item_rows(definition))]
    return "\n".join(parts) + "\n"


def _csv(headings, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headings)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def codes_xlsx(tables) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, (headings, rows) in tables.items():
        sheet = book.create_sheet(name[:31])
        sheet.append(headings)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rules_md() -> str:
    return f"""# 検査ルール（python -m nanbyo.check と同じ）

ファイルごとに次の順で検査し、問題はファイル名・行・XPath・項目名・内容・直し方を日本語で示します。

## ファイル
- 大きさは {reader.MAX_FILE_BYTES // (1024 * 1024)}MB まで。要素は1ファイル {reader.MAX_ELEMENTS:,} 個まで
  （書類の多いときはファイルを分けて ZIP にまとめる）。1項目の文字列は {reader.MAX_TEXT_CHARS:,} 文字まで。
- 文字コードは UTF-8（BOM 可）、または XML宣言で Shift_JIS と宣言したもの。宣言と中身が違うと受け付けません。
- DOCTYPE（DTD・実体宣言）、XInclude、schemaLocation は使えません。外部のファイルやネットワークは参照しません。
- ZIP は、ファイル数 {archive.MAX_ENTRIES:,} まで、展開後の合計 {archive.MAX_TOTAL_BYTES // (1024 ** 3)}GB まで、圧縮率
  {archive.MAX_RATIO} 倍まで。フォルダを含む名前は可、絶対パス・「..」・「\\」・ZIPの中のZIP・暗号化は不可。.xml 以外は読みません。
- ルート要素は documents、version 属性は {'・'.join(contract.VERSIONS)}。対応していない版は版の番号を示して受け付けません。

## 書類ごと
1. スキーマ（xsd/documents-1.xsd、疾病別の項目は xsd/form-items-1.xsd）に合うこと。
2. 申請区分がその書類の種類で使えること（難病: 新規・更新・変更・軽症者登録 / 小慢: 新規・継続・変更）。
3. 疾病（告示番号・疾病コード）がマスタ（codes/nanbyo_diseases.csv・shoman_diseases.csv）にあり、作成年月日に指定難病であること。
4. items の様式コードと版が、その疾病と作成年月日で使う様式（codes/forms.csv）であること。
5. 疾病別の項目: 様式にある項目だけ、型と範囲・桁・コードが合うこと、必須の項目と条件付きで必須の項目があること。
6. 患者: 必須の欄（氏名・カナ・性別・生年月日・住所）、カナはカタカナ、郵便番号は7桁、保険者番号は6桁か8桁、
   保険の欄は保険の欄がある様式だけ。
7. 日付: 作成年月日・説明日は未来でない、診断年月日は作成年月日以前で生年月日以後、様式が求めるときは診断年月日があること。
8. 説明（DB登録）への回答が「説明済・同意」であること（同意しない場合は紙の様式を使います）。
9. 小慢: 新規は作成年月日に18歳未満、継続・変更は20歳未満。
10. 指定医の区分（doctor/@designation）を書いたときは、その区分で作成できる書類であること（小慢の医療意見書は小慢指定医、
   臨床調査個人票は難病指定医、更新は協力難病指定医も）。サーバへの取込では、指定医番号がその区分の指定であることも照合します。
"""


def readme_md(valid, invalid) -> str:
    return f"""# 難病・小慢データベース XML 連携資料（版 {contract.VERSION}）

院内システムから臨床調査個人票・医療意見書を XML で出力するための資料です。すべてアプリケーションの定義から生成しています。

| ファイル | 内容 |
| --- | --- |
| xsd/documents-1.xsd | XMLスキーマ（書類単位）。疾病別の項目は xsd/form-items-1.xsd |
| record-definition.xlsx / .md | ファイルレコード定義書: 書類の要素と属性、様式ごとの疾病別項目 |
| codes.xlsx / codes/*.csv | コード表（CSV は UTF-8 BOM 付き） |
| samples/valid/ | 様式ごとの正しい書類 {len(valid)} 件 |
| samples/invalid/ | 検査で受け付けられない書類 {len(invalid)} 件と、そのときのメッセージ（samples/invalid/README.md） |
| rules.md | 検査ルール |

検査ツール: `python -m nanbyo.check ファイル・フォルダ・ZIP [--format text|json|junit]`（ネットワーク・データベース不要。
問題がなければ終了コード 0）。
"""


@lru_cache
def build() -> bytes:
    """The package as ZIP bytes."""
    valid = [(f"{kind}-{code}.xml", file_bytes([sample_element(kind, code)])) for kind, code in sample_diseases()]
    invalid = invalid_samples()
    findings = []
    for name, what, data in invalid:
        result = check.check_bytes(name, data, today=SAMPLE_DAY)
        problems = [*result.problems, *(p for d in result.documents for p in d.problems)]
        findings.append((name, what, " / ".join(p.text(name) for p in problems)))
    tables = code_tables()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as kit:
        kit.writestr("README.md", readme_md(valid, invalid))
        for schema in ("documents-1.xsd", "form-items-1.xsd"):
            kit.writestr(f"xsd/{schema}", (contract.XSD_DIRECTORY / schema).read_bytes())
        kit.writestr("record-definition.xlsx", record_definition_xlsx())
        kit.writestr("record-definition.md", record_definition_md())
        kit.writestr("codes.xlsx", codes_xlsx(tables))
        for name, (headings, rows) in tables.items():
            kit.writestr(f"codes/{name}.csv", _csv(headings, rows))
        for name, data in valid:
            kit.writestr(f"samples/valid/{name}", data)
        for name, _what, data in invalid:
            kit.writestr(f"samples/invalid/{name}", data)
        kit.writestr("samples/invalid/README.md", "# 受け付けられない書類の例と検査のメッセージ\n\n"
                     + _md_table(["ファイル", "誤り", "検査のメッセージ"], findings) + "\n")
        kit.writestr("rules.md", rules_md())
    return out.getvalue()


FILE_NAME = f"nanbyo-xml-kit-{contract.VERSION}.zip"


DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "xml"


def codes_md(tables) -> str:
    return f"# コード表（XML 版 {contract.VERSION}）\n\n" + "".join(
        f"## {name}\n\n{_md_table(headings, rows)}\n\n" for name, (headings, rows) in tables.items())


def docs() -> dict[str, str]:
    """The package's texts kept in the repository too (docs/xml/): {file name: text}."""
    return {"record-definition.md": record_definition_md(), "codes.md": codes_md(code_tables()),
            "rules.md": rules_md()}


def main(argv=None) -> int:
    """Write the package to build/ (or the folder given), and its texts to docs/xml/."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "build")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    path.write_bytes(build())
    print(path)
    for name, text in docs().items():
        (DOCS / name).write_text(text, encoding="utf-8")
        print(DOCS / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
