"""The one place that decides who may see and change what.

Three questions, asked by every view:
- `allowed(user, area, permission)`: may this user use this screen for this (list, details, create, edit, ...)?
- `row_filter(user, model, purpose)`: which rows of a table (an SQL criterion) may be read / written / supported?
- `assignable(user, model)`: which form fields and which roles this user may set.
"""
from sqlalchemy import and_, exists, false, or_, select, true

from models.accounts import Membership, User
from models.audit import OperationLog
from models.documents import Document
from models.institutions import Institution, Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from models.scans import ScanFile
from nanbyo.document_codes import DRAFT, EDITABLE_BY_AUTHOR, MUNICIPALITY_VISIBLE, UNDER_REVIEW
from nanbyo.roles import (DESIGNATED_DOCTOR, INSTITUTION_MANAGER, INSTITUTION_STAFF, MUNICIPALITY_ADMIN,
                          MUNICIPALITY_ROLES, MUNICIPALITY_USER, OPERATOR_ADMIN, OPERATOR_ROLES, OPERATOR_USER,
                          ROLES, STATUS_ACTIVE, STATUS_LOCKED)

READ = frozenset({"list", "details"})
ALL = READ | {"create", "edit", "delete", "export"}

# area -> principal -> permissions. A principal is a role, or INSTITUTION_MANAGER for a 責任者.
RULES = {
    "municipalities": {
        OPERATOR_ADMIN: ALL, OPERATOR_USER: READ, MUNICIPALITY_ADMIN: READ, MUNICIPALITY_USER: READ,
    },
    "institutions": {
        OPERATOR_ADMIN: ALL, OPERATOR_USER: READ | {"export"},
        MUNICIPALITY_ADMIN: ALL, MUNICIPALITY_USER: READ | {"export"}, INSTITUTION_MANAGER: READ,
    },
    # A 責任者 has one screen for the institution's users: institution_users (not the user and membership lists).
    "users": {
        OPERATOR_ADMIN: ALL | {"unlock", "disable", "key_reset", "notice"},
        MUNICIPALITY_ADMIN: ALL | {"unlock", "disable", "key_reset", "notice"},
    },
    "memberships": {
        OPERATOR_ADMIN: ALL, MUNICIPALITY_ADMIN: ALL,
    },
    "masters": {role: READ for role in ROLES} | {OPERATOR_ADMIN: READ | {"export"}},
    "operation_log": {OPERATOR_ADMIN: READ | {"export"}},
    "account": {role: frozenset({"use"}) for role in ROLES},
    # 出力ファイル: everyone sees their own export jobs only (views/exports.py).
    "exports": {role: frozenset({"use"}) for role in ROLES},
    "user_import": {MUNICIPALITY_ADMIN: frozenset({"use"})},
    # Scans of paper forms: the municipality uploads (its own), the operator takes them for its contractor.
    "scans": {MUNICIPALITY_ADMIN: frozenset({"use", "upload"}), MUNICIPALITY_USER: frozenset({"use", "upload"}),
              OPERATOR_ADMIN: frozenset({"use", "operate"}), OPERATOR_USER: frozenset({"use", "operate"})},
    # 外部委託事業者が作成したデータ一括取込: paper forms digitized for the operator (nanbyo.xmlio.contractor).
    "paper_import": {OPERATOR_ADMIN: frozenset({"use"}), OPERATOR_USER: frozenset({"use"})},
    # 統計情報: the operator's administrators count every document, a municipality the documents it received.
    "stats": {OPERATOR_ADMIN: frozenset({"use"}), MUNICIPALITY_ADMIN: frozenset({"use"}),
              MUNICIPALITY_USER: frozenset({"use"})},
    # 認定結果データ一括取込: the municipality's review work, for both its roles (as the 審査結果 screen).
    "results_import": {MUNICIPALITY_ADMIN: frozenset({"use"}), MUNICIPALITY_USER: frozenset({"use"})},
    "institution_users": {INSTITUTION_MANAGER: frozenset({"use"})},
    # Documents: "finalize" the doctor's, "review" (key lookup, 行政記載欄, corrections, 審査結果) the municipality's.
    "documents": {
        OPERATOR_ADMIN: ALL | {"finalize", "print"}, OPERATOR_USER: ALL | {"finalize", "print"},
        MUNICIPALITY_ADMIN: READ | {"export", "print", "review"},
        MUNICIPALITY_USER: READ | {"export", "print", "review"},
        DESIGNATED_DOCTOR: ALL | {"finalize", "print"},
        INSTITUTION_STAFF: ALL | {"print"},
        INSTITUTION_MANAGER: READ | {"export", "print"},
    },
}

# Roles each principal may give when creating or editing an account.
ASSIGNABLE_ROLES = {
    OPERATOR_ADMIN: ROLES,
    MUNICIPALITY_ADMIN: (MUNICIPALITY_USER, DESIGNATED_DOCTOR, INSTITUTION_STAFF),
}


def principals(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    found = {user.role}
    if user.role in (DESIGNATED_DOCTOR, INSTITUTION_STAFF) and user.is_manager:
        found.add(INSTITUTION_MANAGER)
    return found


def permissions(user, area: str) -> frozenset:
    rules = RULES.get(area, {})
    result = frozenset()
    for principal in principals(user):
        result |= rules.get(principal, frozenset())
    return result


def allowed(user, area: str, permission: str) -> bool:
    return permission in permissions(user, area)


# --- rows --------------------------------------------------------------------------------------------------------

def _managed_ids(user):
    return user.managed_institution_ids if INSTITUTION_MANAGER in principals(user) else []


def _has_membership_in(institution_ids, *criteria):
    return exists(select(Membership.id).where(Membership.user_id == User.id,
                                              Membership.institution_id.in_(institution_ids), *criteria))


def row_filter(user, model, purpose: str = "read"):
    """SQL criterion for the rows of `model` this user may use for `purpose`: 'read', 'write', or for accounts
    'support' (password reset by notice, unlock, key re-issue)."""
    criterion = _row_filter(user, model, purpose)
    if model is User and purpose == "support":
        # Only accounts in use: a disabled or deleted account is the issuer's to turn back on, never a helper's.
        criterion = and_(criterion, User.status.in_((STATUS_ACTIVE, STATUS_LOCKED)))
    return criterion


def gathers_rows(user, model) -> bool:
    """Whether the rows of `model` `user` reads are few (a doctor's or drafter's own documents): a list then gathers
    them all through the scope's own indexes and sorts them, rather than let the database walk a list-wide index in
    list order hoping to meet them soon (PostgreSQL does, and for a doctor whose documents are old the walk reads
    most of the table). Not a 責任者's: the institutions' documents are many (21,000 for the busiest at 1M), and
    dense enough that the walk meets a page of them soon."""
    return model is Document and user.role in (DESIGNATED_DOCTOR, INSTITUTION_STAFF) and not _managed_ids(user)


def _row_filter(user, model, purpose):
    roles = principals(user)
    if not roles:
        return false()
    if model in (NanbyoCategory, NanbyoDisease, ShomanGroup, ShomanDisease):
        return true() if purpose == "read" or OPERATOR_ADMIN in roles else false()
    if model is OperationLog:
        return true() if OPERATOR_ADMIN in roles and purpose == "read" else false()
    if model is ScanFile:
        # Scans: a municipality its own; the operator every municipality's (for its contractor).
        if roles & set(OPERATOR_ROLES):
            return true()
        return ScanFile.municipality_id == user.municipality_id if roles & set(MUNICIPALITY_ROLES) else false()
    if model is Document:
        return _document_filter(user, roles, purpose)
    if roles & set(OPERATOR_ROLES):
        return true() if purpose == "read" or OPERATOR_ADMIN in roles else false()

    own_muni = user.municipality_id if roles & set(MUNICIPALITY_ROLES) else None
    is_muni_admin = MUNICIPALITY_ADMIN in roles
    managed = _managed_ids(user)

    if model is Municipality:
        return Municipality.id == own_muni if own_muni and purpose == "read" else false()

    if model is Institution:
        if own_muni and (purpose == "read" or is_muni_admin):
            # The institutions the 自治体 is 実施主体 of, for 難病 or for 小慢.
            return or_(Institution.municipality_id == own_muni, Institution.shoman_municipality_id == own_muni)
        if managed and purpose == "read":
            return Institution.id.in_(managed)
        return false()

    if model is User:
        if is_muni_admin:
            issued = User.issuing_municipality_id == own_muni
            if purpose == "read":
                return or_(issued, User.municipality_id == own_muni)
            # Only the issuer edits a doctor's ID; admins of the same 自治体 are the operator's to manage.
            return or_(issued, and_(User.municipality_id == own_muni, User.role == MUNICIPALITY_USER))
        if managed and purpose == "read":
            return _has_membership_in(managed)
        if managed and purpose == "support":
            # A 責任者 supports the accounts whose 主たる勤務先 they manage (their doctors, the staff they
            # registered): never a 兼務 doctor, whose ID another institution applied for, and not themselves.
            return and_(_has_membership_in(managed, Membership.kind == "primary"), User.id != user.id)
        return User.id == user.id if purpose == "read" else false()

    if model is Membership:
        if is_muni_admin:
            under_own = Membership.institution_id.in_(select(Institution.id).where(
                or_(Institution.municipality_id == own_muni, Institution.shoman_municipality_id == own_muni)))
            issued_by_own = Membership.user_id.in_(select(User.id).where(User.issuing_municipality_id == own_muni))
            return or_(under_own, issued_by_own) if purpose == "read" else issued_by_own
        if managed and purpose == "read":
            return Membership.institution_id.in_(managed)
        return Membership.user_id == user.id if purpose == "read" else false()

    return false()


def _own_documents(user):
    """Who writes at an institution reads their own documents (as author or drafter); a 責任者 also every document of
    the institutions they manage. The criteria whose OR that is."""
    branches = [Document.author_id == user.id, Document.created_by_id == user.id]
    managed = _managed_ids(user)
    return branches + [Document.institution_id.in_(managed)] if managed else branches


def read_branches(user, model) -> list:
    """The rows of `model` `user` reads, as criteria whose OR they are (one for most users): a list whose scope is
    several can take each branch's page along its own index and merge them (views/base.py)."""
    if model is Document and user.role in (DESIGNATED_DOCTOR, INSTITUTION_STAFF) and principals(user):
        return _own_documents(user)
    return [row_filter(user, model, "read")]


def _document_filter(user, roles, purpose):
    """Purposes: read; write (change content, delete); finalize; review (the municipality's work)."""
    if roles & set(OPERATOR_ROLES):
        # The operator digitizes paper: it reads, writes and finalizes any document, and reviews none.
        return {"read": true(), "write": true(), "finalize": Document.status == DRAFT}.get(purpose, false())
    if roles & set(MUNICIPALITY_ROLES):
        addressed = Document.municipality_id == user.municipality_id
        if purpose == "read":
            return and_(addressed, Document.status.in_(MUNICIPALITY_VISIBLE))
        if purpose == "review":
            return and_(addressed, Document.status.in_(UNDER_REVIEW))
        return false()
    member_of = [m.institution_id for m in user.memberships]
    if purpose == "read":
        return or_(*_own_documents(user))
    at_own_institution = Document.institution_id.in_(member_of)
    if DESIGNATED_DOCTOR in roles:
        mine = and_(Document.author_id == user.id, at_own_institution)
        if purpose == "write":
            return and_(mine, Document.status.in_(EDITABLE_BY_AUTHOR))
        if purpose == "finalize":
            return and_(mine, Document.status == DRAFT)
        return false()
    if INSTITUTION_STAFF in roles and purpose == "write":
        # Staff draft for a doctor; once the doctor finalizes, the document is the doctor's.
        return and_(Document.created_by_id == user.id, at_own_institution, Document.status == DRAFT)
    return false()


# --- fields ------------------------------------------------------------------------------------------------------

def assignable_roles(user) -> tuple:
    roles = principals(user)
    for principal in (OPERATOR_ADMIN, MUNICIPALITY_ADMIN):
        if principal in roles:
            return ASSIGNABLE_ROLES[principal]
    return ()


# Fields that only the operator may set; everyone else gets them fixed by the server.
OPERATOR_ONLY_FIELDS = {
    User: {"municipality", "issuing_municipality"},
    Institution: {"municipality"},
    Membership: set(),
}


def hidden_fields(user, model) -> set[str]:
    if OPERATOR_ADMIN in principals(user):
        return set()
    return OPERATOR_ONLY_FIELDS.get(model, set())
