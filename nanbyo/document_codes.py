"""Document kinds, application kinds, statuses and field labels (DESIGN.md, "Document lifecycle")."""
SHOMAN, NANBYO = "shoman", "nanbyo"
KIND_LABELS = {SHOMAN: "小児慢性特定疾病 医療意見書", NANBYO: "臨床調査個人票"}
KIND_SHORT_LABELS = {SHOMAN: "小慢 意見書", NANBYO: "難病 臨個票"}

NEW, RENEWAL, CHANGE, MILD = "new", "renewal", "change", "mild"
APPLICATION_KIND_LABELS = {NEW: "新規", RENEWAL: "更新", CHANGE: "変更", MILD: "軽症者登録"}
# 難病: 軽症者登録 is the data registration of a patient whose severity does not meet the criteria (登録者証); 小慢 calls
# its renewal 継続.
APPLICATION_KINDS = {NANBYO: (NEW, RENEWAL, CHANGE, MILD), SHOMAN: (NEW, RENEWAL, CHANGE)}
SHOMAN_APPLICATION_LABELS = {NEW: "新規", RENEWAL: "継続", CHANGE: "変更"}


def application_kind_label(kind, application_kind):
    labels = SHOMAN_APPLICATION_LABELS if kind == SHOMAN else APPLICATION_KIND_LABELS
    return labels.get(application_kind, application_kind)

DRAFT, FINALIZED, RECEIVED, REVIEWED, COMPLETED = "draft", "finalized", "received", "reviewed", "completed"
STATUS_LABELS = {DRAFT: "作成中", FINALIZED: "確定", RECEIVED: "受付", REVIEWED: "審査済", COMPLETED: "登録完了"}
# The doctor may change or delete a document until the municipality takes it (受付).
EDITABLE_BY_AUTHOR = (DRAFT, FINALIZED)
# A municipality sees a document once it has looked its key up.
MUNICIPALITY_VISIBLE = (RECEIVED, REVIEWED, COMPLETED)
UNDER_REVIEW = (RECEIVED, REVIEWED)
KEY_LOOKUP_STATUSES = (FINALIZED, RECEIVED, REVIEWED, COMPLETED)

APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"
REVIEW_RESULT_LABELS = {APPROVED: "認定", REJECTED: "不認定", PENDING: "保留"}

SEX_LABELS = {"1": "男", "2": "女"}
INSURANCE_KIND_LABELS = {
    "employee": "被用者保険（協会けんぽ・組合・共済等）", "national": "国民健康保険", "elderly": "後期高齢者医療",
    "welfare": "生活保護", "other": "その他",
}

# The encrypted patient block: key -> label, in form and print order.
PATIENT_FIELDS = {
    "family_name": "氏名（姓）", "given_name": "氏名（名）", "family_kana": "カナ（姓）", "given_kana": "カナ（名）",
    "sex": "性別", "birth_date": "生年月日", "postal_code": "郵便番号", "address": "住所",
}
# Insurance belongs to the patient's application, not to the 臨個票 / 意見書: only a form definition that asks for
# it ("patient_fields": ["insurance"]) has these.
INSURANCE_FIELDS = {
    "insurance_kind": "保険の種別", "insurer_number": "保険者番号", "insured_symbol": "被保険者証の記号",
    "insured_number": "被保険者証の番号",
}
ALL_PATIENT_FIELDS = PATIENT_FIELDS | INSURANCE_FIELDS
PATIENT_REQUIRED = ("family_name", "given_name", "family_kana", "given_kana", "sex", "birth_date", "address")

# Columns of the document the writer fills besides the patient block and the disease items.
DOCUMENT_FIELDS = {"diagnosed_on": "診断年月日", "written_on": "作成年月日", "explained_on": "説明日（DB登録の説明）"}

# 行政記載欄 and 審査結果: the municipality's own fields.
ADMIN_FIELDS = {
    "reception_no": "受付番号", "recipient_no": "受給者番号", "application_received_on": "申請受付日",
    "research_consent": "研究利用への同意", "review_result": "審査結果", "valid_from": "有効期間（開始）",
    "valid_until": "有効期間（終了）", "severity": "重症度", "review_note": "審査メモ",
}
CONSENT_LABELS = {"": "未確認", "1": "同意あり", "0": "同意なし"}

# 小慢: a 新規 application only under 18 on the application date, a 継続 (or 変更) under 20.
SHOMAN_AGE_LIMITS = {NEW: 18, RENEWAL: 20, CHANGE: 20}

# 説明 (DB登録): the doctor explains the registration before the document is created in the DB.
AGREED, DECLINED = "agreed", "declined"
EXPLANATION_LABELS = {AGREED: "説明済・同意", DECLINED: "説明済・同意しない"}
DECLINED_MESSAGE = ("患者（保護者）がDBへの登録に同意しない場合は、オンラインでは作成できません。"
                    "紙の{form}を使ってください。")

# What became of a document of an XML import (nanbyo.xmlio.importer); also read by the operation log's screen.
IMPORT_RESULT_LABELS = {"created": "作成（下書き）", "updated": "更新（下書き）", "received": "受付（紙の書類）",
                        "kept": "変更なし（確定・受付済み）", "refused": "取込不可"}
