"""医療機関ユーザ管理: the 責任者's work for the institution (staff, concurrent doctors, notices, the 責任者 flag)."""
from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from forms.auth import ConfirmForm
from forms.institution_users import ConcurrentDoctorForm, ManagerTransferForm, StaffForm
from models.accounts import Membership, User
from models.institutions import Institution
from nanbyo import audit
from nanbyo.extensions import db
from nanbyo.issuance import NotIssuable, add_concurrent, reset_for_notices
from nanbyo.notices import render_notices
from nanbyo.roles import DESIGNATED_DOCTOR, INSTITUTION_STAFF, MEMBERSHIP_KIND_LABELS, ROLE_LABELS, STATUS_LABELS
from nanbyo.userfile import new_login_id, unusable_password_hash
from views.base import ProtectedBaseView


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

    def _page(self, institution, staff_form=None, concurrent_form=None, status=200):
        memberships = institution.memberships.order_by(Membership.id).all()
        transfer = ManagerTransferForm(formdata=None)
        transfer.membership_id.choices = [(m.id, f"{m.user.name}（{m.user.login_id}）") for m in memberships
                                          if m.user.role == DESIGNATED_DOCTOR and not m.is_manager]
        managed = db.session.execute(db.select(Institution).where(
            Institution.id.in_(current_user.managed_institution_ids))).scalars().all()
        return self.render("institution_users/index.html", institution=institution, memberships=memberships,
                           managed=managed, staff_form=staff_form or StaffForm(formdata=None),
                           concurrent_form=concurrent_form or ConcurrentDoctorForm(formdata=None),
                           transfer_form=transfer, action_form=ConfirmForm(formdata=None), role_labels=ROLE_LABELS,
                           status_labels=STATUS_LABELS, kind_labels=MEMBERSHIP_KIND_LABELS), status

    @expose("/")
    def index(self):
        return self._page(self._institution())

    @expose("/<int:institution_id>/staff", methods=["POST"])
    def add_staff(self, institution_id):
        institution = self._institution(institution_id)
        form = StaffForm()
        if not form.validate_on_submit():
            return self._page(institution, staff_form=form, status=400)
        user = User(login_id=new_login_id(), name=form.name.data.strip(), name_kana=form.name_kana.data.strip(),
                    email=(form.email.data or "").strip() or None, role=INSTITUTION_STAFF,
                    password_hash=unusable_password_hash(), must_change_password=True,
                    issuing_municipality=institution.municipality)
        user.memberships.append(Membership(institution=institution, kind="primary",
                                           department=(form.department.data or "").strip()))
        db.session.add(user)
        db.session.commit()
        audit.record("create", target=user, data={"role": user.role, "institution_code": institution.code,
                                                  "by_manager": True})
        flash(f"一般ユーザ {user.name}（{user.login_id}）を登録しました。「発行通知書」を出力して本人に渡してください。",
              "success")
        return redirect(url_for(".index", institution=institution.id))

    @expose("/<int:institution_id>/concurrent", methods=["POST"])
    def add_concurrent(self, institution_id):
        institution = self._institution(institution_id)
        form = ConcurrentDoctorForm()
        if form.validate_on_submit():
            doctor = db.session.execute(db.select(User).filter_by(login_id=form.login_id.data.strip(),
                                                                  role=DESIGNATED_DOCTOR)).scalar_one_or_none()
            if doctor is None or doctor.status == "deleted":
                form.login_id.errors.append("このログインIDの指定医は登録されていません。")
            elif add_concurrent(doctor, institution, form.department.data, by_manager=True) is None:
                form.login_id.errors.append("この指定医は既にこの医療機関に所属しています。")
            else:
                flash(f"{doctor.name} を兼務の指定医として登録しました。", "success")
                return redirect(url_for(".index", institution=institution.id))
        return self._page(institution, concurrent_form=form, status=400)

    @expose("/<int:institution_id>/concurrent/<int:user_id>/remove", methods=["POST"])
    def remove_concurrent(self, institution_id, user_id):
        institution = self._institution(institution_id)
        membership = self._member(institution, user_id)
        if ConfirmForm().validate_on_submit() and membership.kind == "concurrent" and not membership.is_manager:
            db.session.delete(membership)
            db.session.commit()
            audit.record("delete", target_type="membership", target_id=membership.id, data={"by_manager": True})
            flash("兼務の登録を外しました。", "success")
        else:
            flash("外せるのは兼務の登録だけです。", "error")
        return redirect(url_for(".index", institution=institution.id))

    @expose("/<int:institution_id>/notice/<int:user_id>", methods=["POST"])
    def notice(self, institution_id, user_id):
        institution = self._institution(institution_id)
        membership = self._member(institution, user_id)
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            entries = reset_for_notices([membership.user])
        except NotIssuable as e:
            flash(str(e), "error")
            return redirect(url_for(".index", institution=institution.id))
        return Response(render_notices(entries), mimetype="application/pdf",
                        headers={"Content-Disposition": f"attachment; filename=notice_{membership.user.login_id}.pdf"})

    @expose("/<int:institution_id>/manager", methods=["POST"])
    def transfer_manager(self, institution_id):
        institution = self._institution(institution_id)
        form = ManagerTransferForm()
        candidates = {m.id: m for m in institution.memberships
                      if m.user.role == DESIGNATED_DOCTOR and not m.is_manager and m.user.status == "active"}
        form.membership_id.choices = [(i, "") for i in candidates]
        if not form.validate_on_submit():
            flash("新しい責任者を選んでください（この医療機関に所属する有効な指定医）。", "error")
            return redirect(url_for(".index", institution=institution.id))
        current = institution.memberships.filter_by(is_manager=True).first()
        successor = candidates[form.membership_id.data]
        if current is not None:
            current.is_manager = False
            db.session.flush()  # at most one 責任者 per institution, also inside this transaction
        successor.is_manager = True
        db.session.commit()
        audit.record("manager_transfer", target=institution,
                     data={"from": current.user.login_id if current else None, "to": successor.user.login_id})
        flash(f"責任者を {successor.user.name} に交代しました。", "success")
        return redirect(url_for("admin.index"))
