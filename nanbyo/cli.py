"""`flask --app app nanbyo ...` commands."""
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from nanbyo import audit, database

nanbyo_cli = AppGroup("nanbyo", help="難病・小慢データベースの運用コマンド")


@nanbyo_cli.command("load-masters")
@click.argument("directory", required=False)
@click.option("--strict", is_flag=True, help="マスタに問題（注意）が1件でもあれば何も読み込まず終了コード 1 で終わる")
def load_masters_command(directory, strict):
    """マスタ（自治体・指定難病・小慢）を CSV ディレクトリから読み込む。

    内容の問題（疾病のない疾患群、疾患群と一致しない疾病コード、重複したコードなど）は「注意」として表示する。
    既定では問題があっても読み込み、--strict では何も変更しない。"""
    from nanbyo.masters import ATTRIBUTION, MasterDefectsError, MasterFileError, load_masters
    directory = directory or current_app.config["NANBYO_MASTERS_DIR"]
    database.begin_write()
    try:
        report, defects = load_masters(directory, strict=strict)
    except MasterDefectsError as e:
        for defect in e.defects:
            click.echo(f"注意: {defect}", err=True)
        click.echo(f"マスタを読み込めませんでした（--strict）: {e}", err=True)
        sys.exit(1)
    except MasterFileError as e:
        click.echo(f"マスタを読み込めませんでした: {e}", err=True)
        sys.exit(1)
    audit.record("load_masters", target_type="masters",
                 data={"files": {k: list(v) for k, v in report.items()}, "defects": len(defects)})
    for defect in defects:
        click.echo(f"注意: {defect}", err=True)
    if defects:
        click.echo(f"注意: マスタに問題が {len(defects)} 件あります（そのまま読み込みました。"
                   "--strict を付けると問題があるときは読み込みません）。", err=True)
    for name, (created, updated) in report.items():
        click.echo(f"{name}: 追加 {created} 件, 更新 {updated} 件")
    click.echo(f"出典: {ATTRIBUTION}")


@nanbyo_cli.command("audit-verify")
@click.option("--full", is_flag=True, help="前回の検証の続きからではなく、最初（アーカイブの続き）から検証する")
def audit_verify_command(full):
    """操作ログのハッシュチェーンを検証する（改ざん・削除があれば終了コード 1）。

    前回の検証の記録（署名付き）の続きから、その後のエントリだけを読む。結果を検証の記録として残す。"""
    from nanbyo import audit_chain
    result = audit_chain.verify_chain(full=full)
    checkpoint = result.checkpoint
    for p in result.problems:
        click.echo(p, err=True)
    scope = f"seq={result.start_seq + 1} から {checkpoint.entries} 件を検証"
    if result.problems:
        click.echo(f"操作ログの検証に失敗しました（{len(result.problems)} 件の問題; {scope}）。"
                   f"末尾: {checkpoint.seq} 件目, ハッシュ {checkpoint.entry_hash}", err=True)
        sys.exit(1)
    click.echo(f"操作ログは正常です: {checkpoint.seq} 件, 末尾ハッシュ {checkpoint.entry_hash}（{scope}）")


@nanbyo_cli.command("audit-archive")
@click.option("--before", "before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="この日（日本時間 0:00）より前のエントリをアーカイブする（YYYY-MM-DD）")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="アーカイブの保存先（既定: instance/audit-archive/）")
def audit_archive_command(before, directory):
    """古い操作ログを署名付きのアーカイブ（JSON Lines の gzip とマニフェスト）に移し、表から削除する。

    残るエントリのチェーンはアーカイブの最後のエントリから続き、audit-verify で検証できる。"""
    from pathlib import Path

    from nanbyo import audit_chain
    directory = directory or str(Path(current_app.instance_path) / "audit-archive")
    try:
        made = audit_chain.archive(before.date(), directory)
    except audit_chain.ArchiveRefused as e:
        click.echo(f"アーカイブしませんでした: {e}", err=True)
        sys.exit(1)
    if made is None:
        click.echo(f"{before:%Y-%m-%d} より前のエントリで、まだアーカイブしていないものはありません。")
        return
    m = made.manifest
    click.echo(f"seq={m['first_seq']}〜{m['last_seq']}（{m['count']} 件）をアーカイブしました: {made.data_path}")
    click.echo(f"マニフェスト: {made.manifest_path}（SHA-256 {m['file_sha256']}）")
    click.echo(f"検証用の公開鍵: {audit_chain.key_path().with_suffix('.pub')}（鍵 ID {m['key_id']}）")


@nanbyo_cli.command("audit-verify-archive")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
              help="署名を確かめる公開鍵（PEM; 既定: このサーバの instance/audit-signing.pub）")
@click.option("--offline", is_flag=True, help="データベースのアーカイブの記録との照合をしない（ファイルだけを検証する）")
def audit_verify_archive_command(file, public_key, offline):
    """操作ログのアーカイブを検証する: 署名、ファイルのハッシュ、各エントリのハッシュとチェーン、残りのログとのつながり。"""
    from nanbyo import audit_chain
    from nanbyo.extensions import db
    try:
        manifest, problems = audit_chain.verify_archive(
            file, audit_chain.load_public_key(public_key) if public_key else None,
            session=None if offline else db.session)
    except audit_chain.ArchiveRefused as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        click.echo(f"アーカイブの検証に失敗しました（{len(problems)} 件の問題）。", err=True)
        sys.exit(1)
    click.echo(f"アーカイブは正常です: seq={manifest['first_seq']}〜{manifest['last_seq']}（{manifest['count']} 件）, "
               f"最後のハッシュ {manifest['last_entry_hash']}")


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


@nanbyo_cli.command("import-users")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--municipality", "municipality_code", required=True, help="提出先の自治体の全国地方公共団体コード")
@click.option("--dry-run", is_flag=True, help="検査と結果の表示だけを行い、登録しない")
@click.option("--notices", type=click.Path(dir_okay=False), help="発行通知書（PDF）の出力先（初期パスワードを設定する）")
@click.option("--change-primary", is_flag=True,
              help="既にIDがある指定医（要確認の行）の主たる勤務先をこの医療機関に変更する（医療機関に確認した後に）")
def import_users_command(file, municipality_code, dry_run, notices, change_primary):
    """医療機関ユーザデータファイル（xlsx / csv）から指定医の ID を発行する。"""
    from pathlib import Path

    from models.institutions import Municipality
    from nanbyo import userfile
    from nanbyo.extensions import db
    municipality = db.session.execute(db.select(Municipality).filter_by(code=municipality_code)).scalar_one_or_none()
    if municipality is None:
        click.echo(f"自治体コード {municipality_code} の自治体は登録されていません。", err=True)
        sys.exit(2)
    data = Path(file).read_bytes()
    database.begin_write()  # planned and imported under one lock: nobody changes the accounts in between
    result = userfile.plan(municipality, Path(file).name, data)
    for line in userfile.report_lines(result):
        click.echo(line, err=not result.ok)
    if not result.ok:
        click.echo("このファイルは受け付けられません。何も登録していません。", err=True)
        sys.exit(1)
    rows = result.change_primary_rows if change_primary else set()
    refused = userfile.change_primary_problems(result, rows)
    for problem in refused:
        click.echo(f"  {problem}", err=True)
    if refused:
        click.echo("主たる勤務先を変更できない行があります。何も登録していません。", err=True)
        sys.exit(1)
    if result.to_confirm and not change_primary:
        click.echo(f"要確認の {len(result.to_confirm)} 行は変更しません（主たる勤務先を変更するには --change-primary）。")
    if dry_run:
        click.echo("--dry-run のため登録していません。")
        return
    batch = userfile.execute(result, filename=Path(file).name, data=data, change_primary_rows=rows)
    click.echo(f"登録しました（取込番号 {batch.id}）: 新規発行 {batch.created_count} 件, 報告のみ {batch.reported_count} 件")
    if notices and batch.created_count:
        from nanbyo.issuance import reset_for_notices
        Path(notices).write_bytes(reset_for_notices(batch.users))
        click.echo(f"発行通知書を {notices} に出力しました（{len(batch.users)} 件）。")


@nanbyo_cli.command("rotate-key")
@click.option("--batch-size", default=500, show_default=True, help="1トランザクションで再暗号化する件数")
def rotate_key_command(batch_size):
    """患者情報の暗号鍵と検索用インデックス鍵を新しくし、全件を再暗号化する（中断しても再実行できる）。"""
    from nanbyo.crypto import keys_path
    from nanbyo.key_rotation import rotate
    click.echo(f"鍵ファイル: {keys_path()}")
    counts = rotate(batch_size=batch_size, progress=lambda name, n: click.echo(f"  {name}: {n} 件", err=True))
    audit.record("rotate_key", target_type="document", data=counts)
    click.echo(f"再暗号化しました: 書類 {counts['documents']} 件, 訂正履歴 {counts['corrections']} 件, "
               f"スキャンファイル {counts['scans']} 件, 保持中のフォーム {counts['held_forms']} 件, "
               f"XML取込の待ちファイル {counts['import_files']} 件・結果 {counts['import_reports']} 件, "
               f"ユーザデータファイルの確認待ち {counts['previews']} 件。古い鍵は削除しました。")
    click.echo("鍵ファイルのバックアップを更新してください（古いバックアップでは新しいデータを復号できません）。")


@nanbyo_cli.command("check")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", help="出力形式")
def check_command(paths, fmt):
    """臨個票・意見書のXML（ファイル・フォルダ・ZIP）を検査する。python -m nanbyo.check と同じ検査を、この
    サーバのマスタ（NANBYO_MASTERS_DIR）で行う。問題がなければ終了コード 0、あれば 1。"""
    from nanbyo.xmlio.cli import run
    sys.exit(run(paths, fmt, masters=current_app.config["NANBYO_MASTERS_DIR"]))


@nanbyo_cli.command("export-xml")
@click.option("--document", "document_id", type=int, required=True, help="書類の No.")
def export_xml_command(document_id):
    """書類1件を XML（xsd/documents-1.xsd）で標準出力に書き出す。患者情報を含むため、操作ログに記録する。"""
    from models.documents import Document
    from nanbyo.extensions import db
    from nanbyo.xmlio.export import document_xml
    doc = db.session.get(Document, document_id)
    if doc is None:
        click.echo(f"書類 No.{document_id} はありません。", err=True)
        sys.exit(1)
    data = document_xml(doc)
    audit.record("document_xml", target=doc, data={"via": "cli"})
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@nanbyo_cli.command("import-results")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--municipality", "municipality_code", required=True, help="書類の提出先（受け付けた）自治体のコード")
@click.option("--dry-run", is_flag=True, help="検査と変更内容の表示だけを行い、変更しない")
def import_results_command(file, municipality_code, dry_run):
    """認定事務システムの認定結果データ（CSV・xlsx・XML）を、その自治体が受け付けた書類に取り込む。1行でも問題があれば
    何も変更しない（終了コード 1）。同じファイルをもう一度取り込んでも何も変わらない。"""
    from pathlib import Path

    from models.institutions import Municipality
    from nanbyo.extensions import db
    from nanbyo.results.importer import import_results, report_lines
    municipality = db.session.execute(db.select(Municipality).filter_by(code=municipality_code)).scalar_one_or_none()
    if municipality is None:
        click.echo(f"自治体コード {municipality_code} の自治体は登録されていません。", err=True)
        sys.exit(2)
    report = import_results(Path(file).name, Path(file).read_bytes(), municipality, None, dry_run=dry_run)
    for line in report_lines(report):
        click.echo(line, err=not report.ok)
    if not report.ok:
        sys.exit(1)


@nanbyo_cli.command("import-xml")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--institution", "institution_code", help="取込先の医療機関コード（院内システムのXML）")
@click.option("--paper", is_flag=True, help="紙の書類のデータ（外部委託事業者のXML。運営主体のアカウントで）")
@click.option("--as", "login_id", required=True,
              help="取り込む人のログインID（指定医・医療機関の事務、--paper では運営主体）")
@click.option("--all-or-nothing", is_flag=True, help="1件でも取り込めなければ何も取り込まない")
def import_xml_command(paths, institution_code, paper, login_id, all_or_nothing):
    """臨個票・意見書の XML（ファイル・フォルダ・ZIP）を取り込む: 医療機関の下書きとして（--institution）、または
    紙の書類のデータとしてスキャンファイルの自治体の受付へ（--paper）。画面の取込と同じ検査・規則。
    進み具合を標準エラーに表示する。すべて取り込めたら終了コード 0、取り込めない書類があれば 1。"""
    import time
    from pathlib import Path

    from models.accounts import User
    from models.institutions import Institution
    from nanbyo.extensions import db
    from nanbyo.xmlio.check import upload_file_count
    from nanbyo.xmlio.import_jobs import may_import, may_import_paper
    from nanbyo.xmlio.importer import REFUSED, documents_in, import_uploads
    if bool(paper) == bool(institution_code):
        click.echo("--institution（院内システムのXML）か --paper（紙の書類のデータ）のどちらかを指定してください。", err=True)
        sys.exit(2)
    user = db.session.execute(db.select(User).filter_by(login_id=login_id)).scalar_one_or_none()
    institution = None
    if paper and not may_import_paper(user):
        click.echo("紙の書類のデータを取り込めるのは、運営主体の有効なアカウントだけです。", err=True)
        sys.exit(1)
    if not paper:
        institution = db.session.execute(db.select(Institution).filter_by(code=institution_code)).scalar_one_or_none()
        if institution is None or not may_import(user, institution.id):
            click.echo("そのログインIDの利用者（指定医または医療機関の事務）が、その医療機関に所属していません。", err=True)
            sys.exit(1)
    files = []
    for path in map(Path, paths):
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".xml", ".zip")) if path.is_dir() else [path]
        files += [p for p in found if p.is_file()]
    total = sum(upload_file_count(p) for p in files)
    last = [0.0]

    def progress(files_done, outcomes):
        if time.monotonic() - last[0] >= 2 or files_done == total:
            click.echo(f"取込中: ファイル {files_done:,} / {total:,}・書類 {documents_in(outcomes):,} 件",
                       err=True)
            last[0] = time.monotonic()

    outcomes = import_uploads([(str(p), p) for p in files], user, institution,
                              all_or_nothing=all_or_nothing, progress=progress, check_aside=True)
    for o in outcomes:
        where = f"{o.file}" + (f" 書類{o.number}" if o.number else "")
        click.echo(f"{where}: {o.label}" + (f"（No.{o.document_id}）" if o.document_id else ""))
        for message in o.messages:
            click.echo(f"  {message}")
    sys.exit(1 if any(o.result == REFUSED for o in outcomes) else 0)


@nanbyo_cli.command("stats")
@click.option("--by", required=True, help="集計項目（カンマ区切り、3つまで）: kind, disease_group, disease, municipality, "
              "prefecture, institution, sex, age_band, application_kind, status, review_result, month, quarter, "
              "fiscal_year")
@click.option("--fiscal-year", type=int, help="年度（4月〜翌年3月、作成年月日）。指定しなければ全期間")
@click.option("--format", "fmt", type=click.Choice(["csv", "csv_cp932", "xlsx", "json"]), default="csv",
              help="出力形式（既定: csv = UTF-8 BOM付き）")
@click.option("--output", type=click.Path(dir_okay=False), help="出力先のファイル（xlsx では必須）")
@click.option("--mask", is_flag=True, help="患者数が10未満の行を秘匿する（外部に出すとき）")
@click.option("--research", is_flag=True, help="研究利用同意が「同意あり」の書類だけを数える")
def stats_command(by, fiscal_year, fmt, output, mask, research):
    """統計情報（書類数・患者数）をすべての書類について出力する。画面の統計と同じ集計。"""
    from nanbyo import audit
    from nanbyo.stats import counts, output as stats_output
    if fmt == "xlsx" and not output:
        click.echo("xlsx は --output でファイルを指定してください。", err=True)
        sys.exit(2)
    wanted = counts.Request(by=[key.strip() for key in by.split(",") if key.strip()], fiscal_year=fiscal_year,
                            mask=mask, research=research)
    try:
        table = counts.count(None, wanted)
    except counts.StatsProblem as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    body = stats_output.render(table, fmt)
    audit.record("stats_export", target_type="statistics", data={
        "by": wanted.by, "fiscal_year": fiscal_year, "format": fmt, "masked": mask, "research": research})
    if output:
        with open(output, "wb") as out:
            out.write(body)
    else:
        sys.stdout.buffer.write(body) if hasattr(sys.stdout, "buffer") else click.echo(body.decode(), nl=False)


@nanbyo_cli.command("stats-refresh")
def stats_refresh_command():
    """統計の集計列（性別・年齢）を、暗号化した患者情報から書き直す（移行 0018 の後に1回。何度実行してもよい）。"""
    from nanbyo.stats.refresh import refresh
    done = refresh(progress=lambda n: click.echo(f"書類 {n:,} 件", err=True))
    click.echo(f"書類 {done:,} 件の集計列を書き直しました。")


@nanbyo_cli.command("create-operator")
@click.argument("login_id")
@click.option("--name", required=True, help="氏名")
@click.option("--name-kana", default="", help="カナ")
@click.option("--notice", "notice_path", required=True, type=click.Path(dir_okay=False, exists=False),
              help="初期パスワードの通知書（PDF）を書くファイル（本人に渡したら削除）")
def create_operator_command(login_id, name, name_kana, notice_path):
    """運営主体 管理者のアカウントを作る（導入直後の最初の1人など）。初期パスワードは通知書（PDF）にだけ書かれ、
    初回ログインでパスワード変更・メールアドレスと鍵ファイルの登録をする。"""
    import re
    from models.accounts import User
    from nanbyo import audit, auth, database, files, issuance
    from nanbyo.extensions import db
    from nanbyo.roles import OPERATOR_ADMIN, STATUS_ACTIVE
    from models._types import utcnow
    if not re.fullmatch(r"[A-Za-z0-9._-]{3,64}", login_id):
        click.echo("ログインIDは英数字と . _ - の3〜64文字にしてください。", err=True)
        sys.exit(2)
    if db.session.execute(db.select(User.id).filter_by(login_id=login_id)).first():
        click.echo(f"ログインID {login_id} は使われています。", err=True)
        sys.exit(1)
    placeholder = auth.hash_password(auth.generate_initial_password())  # replaced by the notice's at once
    database.begin_write()
    user = User(login_id=login_id, name=name, name_kana=name_kana or name, role=OPERATOR_ADMIN,
                status=STATUS_ACTIVE, failed_logins=0, password_hash=placeholder, must_change_password=True,
                created_at=utcnow())
    db.session.add(user)
    db.session.flush()
    audit.record("create", target=user, data={"role": OPERATOR_ADMIN, "command": "create-operator"})
    pdf = issuance.reset_for_notices([user])
    with files.open_private(notice_path) as out:
        out.write(pdf)
    click.echo(f"{login_id} を作りました。初期パスワードの通知書: {notice_path}（本人に渡したら削除してください）")


@nanbyo_cli.command("backup")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--keep", type=int, default=3, show_default=True, help="残す世代数（古いものから削除）")
def backup_command(directory, keep):
    """データベース（PostgreSQL は pg_dump、SQLite はオンラインバックアップ）と暗号化したスキャンファイル（保存先の
    フォルダまたはオブジェクトストレージから）を DIRECTORY/<日時>/ にバックアップし、チェックサムの一覧（manifest.json）を書く。鍵ファイルは含めない（別に保管）。"""
    from nanbyo import audit, backup
    try:
        folder = backup.backup(directory, keep=keep)
    except backup.BackupError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    audit.record("backup", target_type="database", data={"folder": folder.name, "keep": keep})
    click.echo(f"バックアップしました: {folder}")


@nanbyo_cli.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def restore_command(directory):
    """バックアップ（世代のフォルダ、または世代を並べたフォルダの最新）を、空のデータベースと、スキャンファイルの
    ない保存先（フォルダまたはオブジェクトストレージ）に戻す。先にチェックサムと鍵ファイルを確かめ、合わなければ何も書かない。"""
    from nanbyo import audit, backup
    try:
        manifest = backup.restore(directory)
    except backup.BackupError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    audit.record("restore", target_type="database", data={"created_at": manifest["created_at"],
                                                           "revision": manifest["revision"]})
    click.echo(f"{manifest['created_at']} のバックアップを戻しました。`flask --app app db upgrade` と"
               "`flask --app app nanbyo audit-verify --full` を実行してください。")


def init_app(app):
    app.cli.add_command(nanbyo_cli)
