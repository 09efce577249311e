"""Writes the schema and rule violations beside this file (python -m tests.data.violations.make): one valid document
of the vendor package's samples with one thing wrong, each file with where the check must say so (VIOLATIONS).

tests/xmlio/test_check.py checks that the files on disk are these and that each is reported where it is wrong;
tests/xmlio/test_import.py that importing any of them changes nothing."""
from pathlib import Path

from lxml import etree

from tests.data.hostile.make import FILES
from tests.xmlio import samples

HERE = Path(__file__).resolve().parent


def edited(change, kind="nanbyo", code="6", **content):
    """A valid document changed by `change(document element)`, as file bytes."""
    document = samples.element(kind, code, **content)
    change(document)
    return samples.xml(document)


def set_text(path, text):
    return lambda d: setattr(d.find(path), "text", text)


def set_attr(path, name, value):
    return lambda d: d.find(path).set(name, value)


def drop(path):
    return lambda d: d.find(path).getparent().remove(d.find(path))


# (file name, file bytes, XPath ending, item label, message fragment)
VIOLATIONS = [
    ("kind_unknown.xml", edited(set_text("kind", "other")), "/kind", "書類の種類", "選択肢にない値です"),
    ("application_kind_unknown.xml", edited(set_text("application_kind", "renew")), "/application_kind", "申請区分", "選択肢にない"),
    ("application_kind_mild_shoman.xml", edited(set_text("application_kind", "mild"), "shoman", "01_01_001"), "/application_kind",
     "申請区分", "小児慢性特定疾病 医療意見書の申請区分は"),
    ("disease_not_in_master.xml", edited(set_text("disease", "999")), "/disease", "疾病（告示番号／疾病コード）",
     "告示番号 999 はマスタにありません"),
    ("disease_shape.xml", edited(set_text("disease", "6a")), "/disease", "疾病（告示番号／疾病コード）", "形式が正しくありません"),
    ("date_format.xml", edited(set_text("written_on", "2026/11/02")), "/written_on", "作成年月日", "YYYY-MM-DD"),
    ("date_time_zone.xml", edited(set_text("written_on", "2026-11-02+09:00")), "/written_on", "作成年月日",
     "形式が正しくありません"),
    ("written_in_future.xml", edited(set_text("written_on", "2027-01-01")), "/written_on", "作成年月日", "未来"),
    ("diagnosed_after_written.xml", edited(set_text("diagnosed_on", "2026-11-03")), "/diagnosed_on", "診断年月日",
     "作成年月日以前"),
    ("explanation_declined.xml", edited(set_attr("explanation", "answer", "declined")), "/explanation/@answer",
     "説明への回答", "紙の臨床調査個人票"),
    ("explanation_no_date.xml", edited(lambda d: d.find("explanation").attrib.pop("on")), "/explanation", "説明（DB登録）",
     "属性 on がありません"),
    ("doctor_number_shape.xml", edited(set_attr("doctor", "number", "13 N 0101")), "/doctor/@number", "指定医番号",
     "形式が正しくありません"),
    ("doctor_kyoryoku_new.xml", edited(set_attr("doctor", "designation", "nanbyo_kyoryoku"), application_kind="new"),
     "/doctor/@designation", "指定医の区分", "協力難病指定医は更新の臨床調査個人票だけ"),
    ("doctor_shoman_for_nanbyo.xml", edited(set_attr("doctor", "designation", "shoman")), "/doctor/@designation",
     "指定医の区分", "臨床調査個人票は難病指定医"),
    ("doctor_designation_unknown.xml", edited(set_attr("doctor", "designation", "kyoryoku")), "/doctor/@designation",
     "指定医の区分", "選択肢にない値です"),
    ("institution_code_shape.xml", edited(set_attr("institution", "code", "131000001")), "/institution/@code",
     "医療機関コード", "形式が正しくありません"),
    ("patient_sex.xml", edited(set_text("patient/sex", "F")), "/patient/sex", "性別", "選択肢にない値です"),
    ("patient_birth_date.xml", edited(set_text("patient/birth_date", "1980-13-01")), "/patient/birth_date", "生年月日", "YYYY-MM-DD"),
    ("patient_kana.xml", edited(set_text("patient/family_kana", "yamada")), "/patient/family_kana", "カナ（姓）", "カタカナ"),
    ("patient_no_family_name.xml", edited(drop("patient/family_name")), "/patient/family_name", "氏名（姓）", "を入力してください"),
    ("patient_postal_code.xml", edited(set_text("patient/postal_code", "160")), "/patient/postal_code", "郵便番号", "7桁"),
    ("insurance_not_on_form.xml", edited(lambda d: d.find("patient").append(etree.fromstring(
        "<insurance_kind>national</insurance_kind>"))), "/patient/insurance_kind", "保険の種別", "欄がありません"),
    ("shoman_new_at_18.xml", edited(set_text("patient/birth_date", "2008-04-01"), "shoman", "01_01_001"),
     "/patient/birth_date", "生年月日", "18歳未満"),
    ("form_unknown.xml", edited(set_attr("items", "form", "nanbyo-999")), "/items/@form", "様式コード", "はありません"),
    ("form_of_another_disease.xml", edited(lambda d: d.find("items").attrib.update({"form": "nanbyo-002", "version": "1"})),
     "/items/@form",
     "様式コード", "様式は nanbyo-006"),
    ("form_of_another_kind.xml", edited(lambda d: d.find("items").attrib.update({"form": "shoman-general", "version": "1"})),
     "/items/@form",
     "様式コード", "医療意見書の様式"),
    ("item_unknown.xml", edited(lambda d: d.find("items").append(etree.fromstring('<item id="zzz" type="text">x</item>'))),
     "/items/item[@id='zzz']", "", "ありません"),
    ("element_unknown.xml", edited(lambda d: d.insert(3, etree.fromstring("<comment>x</comment>"))), "/comment", "comment",
     "ここに置けません"),
    ("version_unknown.xml", samples.xml(samples.element("nanbyo", "6")).replace(b'version="1"', b'version="2"', 1),
     "/documents/@version", "XMLの版", "版 '2' のXMLには対応していません"),
    ("no_documents.xml", b'<documents version="1"/>', "/documents", "書類ファイル", "1件もありません"),
    ("root_other.xml", b"<root/>", "", "", "ルート要素は documents"),
    ("doctype.xml", FILES["xxe_file.xml"], "/", "", "DOCTYPE"),
]




def write():
    for name, data, *_expected in VIOLATIONS:
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    write()
