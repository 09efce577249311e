"""医療機関ユーザ管理: the 責任者's work for the institution (staff, notices, key re-issue, the 責任者 flag).

A 責任者 supports only the accounts whose 主たる勤務先 is their institution (nanbyo.access, purpose "support"):
never a 兼務 doctor, whose ID another institution applied for and whose 兼務先 only the doctor adds.
"""
from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from forms.auth import ConfirmForm
from forms.institution_users import ManagerTransferForm, StaffForm
from models.accounts import Membership, User
from models.institutions import Institution
from nanbyo import access, audit, auth, database
from nanbyo.extensions import db
from nanbyo.issuance import NotIssuable, reissue_keys, reset_for_notices
from nanbyo.roles import (DESIGNATED_DOCTOR, INSTITUTION_STAFF, MEMBERSHIP_KIND_LABELS, ROLE_LABELS, STATUS_ACTIVE,
                          STATUS_LABELS)
from nanbyo.userfile import new_login_id, unusable_password_hash
from views.base import ProtectedBaseView


def _pdf(body, filename):
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


class InstitutionUsersView(ProtectedBaseView):
    area = "institution_users"

    def _institution(self, institution_id=None):
        managed = current_user.managed_institution_ids
        wanted = institution_id or request.args.get("institution", type=int) or (managed[0] if managed else None)
        if wanted not in managed:
            abort(403)
        return db.session.get(Institution, wanted)

    def _member(self, institution, user_id):
        membership = db.session.execute(db.select(Membership).filter_by(institution_id=institution.id,
                                                                        user_id=user_id)).scalar_one_or_none()
        if membership is None:
            abort(404)
        return membership

    def _supported(self, institution, user_id):
        """The account, if this 責任者 may reset its password or re-issue its key; 404 otherwise."""
        user = db.session.execute(db.select(User).where(
            User.id == user_id, User.memberships.any(institution_id=institution.id),
            access.row_filter(current_user, User, "support"))).scalar_one_or_none()
        if user is None:
            abort(404)
        return user

    def _page(self, institution, staff_form=None, status=200):
        memberships = institution.memberships.order_by(Membership.id).all()
        supported = set(db.session.execute(db.select(User.id).where(
            User.id.in_([m.user_id for m in memberships]),
            access.row_filter(current_user, User, "support"))).scalars())
        transfer = ManagerTransferForm(formdata=None)
        transfer.membership_id.choices = [(m.id, f"{m.user.name}（{m.user.login_id}）")
                                          for m in self._successors(institution).values()]
        managed = db.session.execute(db.select(Institution).where(
            Institution.id.in_(current_user.managed_institution_ids))).scalars().all()
        return self.render("institution_users/index.html", institution=institution, memberships=memberships,
                           supported=supported, managed=managed, staff_form=staff_form or StaffForm(formdata=None),
                           transfer_form=transfer, action_form=ConfirmForm(formdata=None), role_labels=ROLE_LABELS,
                           status_labels=STATUS_LABELS, kind_labels=MEMBERSHIP_KIND_LABELS), status

    @staticmethod
    def _successors(institution):
        """Who may become 責任者: active doctors whose 主たる勤務先 is this institution."""
        return {m.id: m for m in institution.memberships
                if m.user.role == DESIGNATED_DOCTOR and m.kind == "primary" and not m.is_manager
                and m.user.status == STATUS_ACTIVE}

    @expose("/")
    def index(self):
        return self._page(self._institution())

    @expose("/<int:institution_id>/staff", methods=["POST"])
    def add_staff(self, institution_id):
        institution = self._institution(institution_id)
        form = StaffForm()
        if not form.validate_on_submit():
            return self._page(institution, staff_form=form, status=400)
        password_hash = unusable_password_hash()
        database.begin_write()
        user = User(login_id=new_login_id(), name=form.name.data.strip(), name_kana=form.name_kana.data.strip(),
                    email=(form.email.data or "").strip() or None, role=INSTITUTION_STAFF,
                    password_hash=password_hash, must_change_password=True,
                    issuing_municipality=institution.municipality)
        user.memberships.append(Membership(institution=institution, kind="primary",
                                           department=(form.department.data or "").strip()))
        db.session.add(user)
        db.session.flush()
        audit.record("create", target=user, data={"role": user.role, "institution_code": institution.code,
                                                  "by_manager": True})
        flash(f"一般ユーザ {user.name}（{user.login_id}）を登録しました。「発行通知書」を出力して本人に渡してください。",
              "success")
        return redirect(url_for(".index", institution=institution.id))

    @expose("/<int:institution_id>/concurrent/<int:user_id>/remove", methods=["POST"])
    def remove_concurrent(self, institution_id, user_id):
        institution = self._institution(institution_id)
        if not ConfirmForm().validate_on_submit():
            abort(400)
        database.begin_write()
        membership = self._member(institution, user_id)
        if membership.kind == "concurrent" and not membership.is_manager:
            db.session.delete(membership)
            audit.record("delete", target_type="membership", target_id=membership.id, data={"by_manager": True})
            flash("兼務の登録を外しました。", "success")
        else:
            flash("外せるのは兼務の登録だけです。", "error")
        return redirect(url_for(".index", institution=institution.id))

    def _notice(self, institution_id, user_id, issue, filename):
        """The notice PDF `issue(user)` makes for an account this 責任者 supports; 404 for any other."""
        institution = self._institution(institution_id)
        user = self._supported(institution, user_id)
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            return _pdf(issue(user), f"{filename}_{user.login_id}.pdf")
        except NotIssuable as e:
            flash(str(e), "error")
            return redirect(url_for(".index", institution=institution.id))

    @expose("/<int:institution_id>/notice/<int:user_id>", methods=["POST"])
    def notice(self, institution_id, user_id):
        issuer = f"{self._institution(institution_id).name}（責任者）"
        return self._notice(institution_id, user_id, lambda user: reset_for_notices([user], issuer), "notice")

    @expose("/<int:institution_id>/key/<int:user_id>", methods=["POST"])
    def key_reissue(self, institution_id, user_id):
        issuer = f"{self._institution(institution_id).name}（責任者）"
        return self._notice(institution_id, user_id, lambda user: reissue_keys([user], issuer), "key_notice")

    @expose("/<int:institution_id>/unlock/<int:user_id>", methods=["POST"])
    def unlock(self, institution_id, user_id):
        institution = self._institution(institution_id)
        if not ConfirmForm().validate_on_submit():
            abort(400)
        database.begin_write()
        user = self._supported(institution, user_id)
        if auth.unlock(user):
            audit.record("unlock", target=user)
            flash(f"{user.name}（{user.login_id}）のロックを解除しました。", "success")
        return redirect(url_for(".index", institution=institution.id))

    @expose("/<int:institution_id>/manager", methods=["POST"])
    def transfer_manager(self, institution_id):
        institution = self._institution(institution_id)
        form = ManagerTransferForm()
        database.begin_write()
        candidates = self._successors(institution)
        form.membership_id.choices = [(i, "") for i in candidates]
        if not form.validate_on_submit():
            flash("新しい責任者を選んでください（この医療機関を主たる勤務先とする有効な指定医）。", "error")
            return redirect(url_for(".index", institution=institution.id))
        current = institution.memberships.filter_by(is_manager=True).first()
        successor = candidates[form.membership_id.data]
        if current is not None:
            current.is_manager = False
            db.session.flush()  # at most one 責任者 per institution, also inside this transaction
        successor.is_manager = True
        audit.record("manager_transfer", target=institution,
                     data={"from": current.user.login_id if current else None, "to": successor.user.login_id})
        flash(f"責任者を {successor.user.name} に交代しました。", "success")
        return redirect(url_for("admin.index"))
