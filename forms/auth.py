from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from nanbyo.auth import MAX_PASSWORD_LENGTH


class LoginForm(FlaskForm):
    login_id = StringField("ログインID", validators=[DataRequired("ログインIDを入力してください。"), Length(max=64)])
    password = PasswordField("パスワード", validators=[DataRequired("パスワードを入力してください。"),
                                                    Length(max=MAX_PASSWORD_LENGTH)])
    key_file = FileField("暗号化鍵ファイル")
    key_code = StringField("鍵登録コード", validators=[Length(max=40)])


class NewPasswordMixin:
    new_password = PasswordField("新しいパスワード（12文字以上）",
                                 validators=[DataRequired("新しいパスワードを入力してください。")])
    new_password_confirm = PasswordField(
        "新しいパスワード（確認）",
        validators=[DataRequired("確認用のパスワードを入力してください。"),
                    EqualTo("new_password", "確認用のパスワードが一致しません。")])


class FirstLoginForm(NewPasswordMixin, FlaskForm):
    email = EmailField("メールアドレス", validators=[DataRequired("メールアドレスを入力してください。"),
                                                 Email("メールアドレスの形式が正しくありません。"),
                                                 Length(max=254)])


class ConfirmForm(FlaskForm):
    """A POST with nothing but the CSRF token (key file generation, logout)."""
