from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

KANA_MESSAGE = "カナは全角カタカナで入力してください。"


class StaffForm(FlaskForm):
    name = StringField("氏名", validators=[DataRequired("氏名を入力してください。"), Length(max=100)])
    name_kana = StringField("氏名カナ", validators=[DataRequired("氏名カナを入力してください。"), Length(max=100),
                                                 Regexp(r"^[ァ-ヶー　 ]+$", message=KANA_MESSAGE)])
    email = EmailField("メールアドレス（任意）", validators=[Optional(), Email("メールアドレスの形式が正しくありません。"),
                                                       Length(max=254)])
    department = StringField("部署（部門/診療科）", validators=[Optional(), Length(max=100)])


class ManagerTransferForm(FlaskForm):
    membership_id = SelectField("新しい責任者", coerce=int, validate_choice=True)
