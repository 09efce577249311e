"""認定結果データ一括取込 (nanbyo.results)."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField


class ResultsUploadForm(FlaskForm):
    file = FileField("認定結果データ（CSV・xlsx・XML）")
    dry_run = BooleanField("確認だけする（書類は変更しない）")
