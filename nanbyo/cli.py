"""`flask --app app nanbyo ...` commands."""
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from nanbyo import audit

nanbyo_cli = AppGroup("nanbyo", help="難病・小慢データベースの運用コマンド")


@nanbyo_cli.command("load-masters")
@click.argument("directory", required=False)
def load_masters_command(directory):
    """マスタ（自治体・指定難病・小慢）を CSV ディレクトリから読み込む。"""
    from nanbyo.masters import ATTRIBUTION, MasterFileError, load_masters
    directory = directory or current_app.config["NANBYO_MASTERS_DIR"]
    try:
        report = load_masters(directory)
    except MasterFileError as e:
        click.echo(f"マスタを読み込めませんでした: {e}", err=True)
        sys.exit(1)
    for name, (created, updated) in report.items():
        click.echo(f"{name}: 追加 {created} 件, 更新 {updated} 件")
    click.echo(f"出典: {ATTRIBUTION}")
    audit.record("load_masters", target_type="masters", data={"files": {k: list(v) for k, v in report.items()}})


@nanbyo_cli.command("audit-verify")
def audit_verify_command():
    """操作ログのハッシュチェーンを検証する（改ざん・削除があれば終了コード 1）。"""
    problems, last_seq, last_hash = audit.verify()
    for p in problems:
        click.echo(p, err=True)
    if problems:
        click.echo(f"操作ログの検証に失敗しました（{len(problems)} 件の問題）。", err=True)
        sys.exit(1)
    click.echo(f"操作ログは正常です: {last_seq} 件, 末尾ハッシュ {last_hash}")


@nanbyo_cli.command("demo")
@click.option("--password", default=None, help="デモアカウント共通のパスワード")
@click.option("--if-empty", is_flag=True, help="データがあれば何もせず正常終了する（make run 用）")
def demo_command(password, if_empty):
    """空のデータベースにデモデータを作成する。"""
    from nanbyo.demo import DEFAULT_PASSWORD, DemoRefused, create_demo, database_has_data
    password = password or DEFAULT_PASSWORD
    if if_empty and database_has_data():
        click.echo("データベースに既にデータがあるため、デモデータの作成を省略しました。")
        return
    try:
        written = create_demo(current_app.config["NANBYO_DEMO_KEYS_DIR"], password)
    except DemoRefused as e:
        click.echo(f"デモデータを作成しませんでした: {e}", err=True)
        sys.exit(1)
    audit.record("demo", target_type="database", data={"accounts": [login for login, _ in written]})
    click.echo("デモアカウントを作成しました（パスワードは共通）:")
    for login_id, path in written:
        click.echo(f"  {login_id:14s} 鍵ファイル: {path}")
    click.echo(f"パスワード: {password}")


def init_app(app):
    app.cli.add_command(nanbyo_cli)
