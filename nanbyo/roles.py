"""Roles, doctor kinds and account statuses (DESIGN.md, "Who uses it")."""
OPERATOR_ADMIN = "operator_admin"
OPERATOR_USER = "operator_user"
MUNICIPALITY_ADMIN = "municipality_admin"
MUNICIPALITY_USER = "municipality_user"
DESIGNATED_DOCTOR = "designated_doctor"
INSTITUTION_STAFF = "institution_staff"

ROLE_LABELS = {
    OPERATOR_ADMIN: "システム運営主体 管理者",
    OPERATOR_USER: "システム運営主体 一般ユーザ",
    MUNICIPALITY_ADMIN: "自治体 管理者",
    MUNICIPALITY_USER: "自治体 一般ユーザ",
    DESIGNATED_DOCTOR: "指定医",
    INSTITUTION_STAFF: "医療機関 一般ユーザ",
}
ROLES = tuple(ROLE_LABELS)
OPERATOR_ROLES = (OPERATOR_ADMIN, OPERATOR_USER)
MUNICIPALITY_ROLES = (MUNICIPALITY_ADMIN, MUNICIPALITY_USER)
INSTITUTION_ROLES = (DESIGNATED_DOCTOR, INSTITUTION_STAFF)

# 責任者 is a flag on a membership, not a role; access rules treat it as one more principal.
INSTITUTION_MANAGER = "institution_manager"

DOCTOR_KIND_LABELS = {
    "nanbyo": "難病指定医",
    "nanbyo_kyoryoku": "協力難病指定医",
    "shoman": "小慢指定医",
}

STATUS_ACTIVE = "active"
STATUS_LOCKED = "locked"
STATUS_DISABLED = "disabled"
STATUS_DELETED = "deleted"  # an issued ID deleted by its issuer: kept so that its documents' history stays readable
STATUS_LABELS = {STATUS_ACTIVE: "有効", STATUS_LOCKED: "ロック中", STATUS_DISABLED: "無効", STATUS_DELETED: "削除済み"}

MUNICIPALITY_KIND_LABELS = {
    "prefecture": "都道府県",
    "designated_city": "指定都市",
    "core_city": "中核市",
    "child_guidance_city": "児童相談所設置市",
    "other": "その他",
}

MEMBERSHIP_KIND_LABELS = {"primary": "主たる勤務先", "concurrent": "兼務先"}
