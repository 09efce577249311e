from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from forms.auth import NewPasswordMixin


class ProfileForm(FlaskForm):
    name = StringField("氏名", validators=[DataRequired("氏名を入力してください。"), Length(max=100)])
    name_kana = StringField("氏名カナ", validators=[Optional(), Length(max=100),
                                                 Regexp(r"^[ァ-ヶー　 ]*$", message="カナは全角カタカナで入力してください。")])
    email = EmailField("メールアドレス", validators=[DataRequired("メールアドレスを入力してください。"),
                                                 Email("メールアドレスの形式が正しくありません。"),
                                                 Length(max=254)])


class DoctorProfileForm(FlaskForm):
    """A doctor's name, カナ and 指定医番号 are part of the 指定: only the e-mail address is the doctor's to change."""
    email = ProfileForm.email


def profile_form(**kwargs):
    from flask_login import current_user
    return (DoctorProfileForm if current_user.is_doctor else ProfileForm)(**kwargs)


class PasswordChangeForm(NewPasswordMixin, FlaskForm):
    current_password = PasswordField("現在のパスワード", validators=[DataRequired("現在のパスワードを入力してください。")])


class KeyReissueForm(FlaskForm):
    current_password = PasswordField("現在のパスワード", validators=[DataRequired("現在のパスワードを入力してください。")])


class ConcurrentAddForm(FlaskForm):
    institution_code = StringField("兼務先の医療機関コード（10桁）",
                                   validators=[DataRequired("医療機関コードを入力してください。"),
                                               Regexp(r"^\d{10}$", message="医療機関コードは10桁の数字です。")])
    department = StringField("部署（部門/診療科）", validators=[Optional(), Length(max=100)])
