#!/bin/sh
# Regenerates the 医療機関ユーザデータファイル that a real spreadsheet program saved, for
# tests/test_user_import_real_files.py. The tests read the committed files: LibreOffice is needed only to run this.
#
#   apt-get install -y libreoffice-calc-nogui      # Debian 12: LibreOffice 7.4
#   sh tests/data/make_lo_files.sh
#
# How the files are made (what a clerk does in Calc):
#   - The source is a UTF-8 CSV named 医療機関ユーザデータ.csv: Calc names the sheet after the file, so the sheet
#     comes out as 医療機関ユーザデータ, the name the importer requires.
#   - --infilter="CSV:44,34,76,1,<column formats>" is the CSV import dialog: separator 44 (,), text delimiter
#     34 ("), character set 76 (UTF-8), start at line 1, then column/format pairs: 2 = テキスト (keeps the leading
#     zero of a code), 5 = 日付 (YMD: the cell becomes a real date cell), 1 = 標準 (a number when it looks like one).
#   - --convert-to "csv:Text - txt - csv (StarCalc):44,34,64,1" is 名前を付けて保存 > CSV with character set 64
#     (Japanese Shift_JIS; Calc writes the Windows-31J/CP932 superset, e.g. 髙 as 0xFB 0xFC).
#
# Outputs (in tests/data/):
#   userfile_lo_valid.xlsx     3 doctors of 1310000017 東京見本病院, every column formatted as text
#   userfile_lo_dates.xlsx     3 doctors; 指定期間 typed as 2026/4/1 and imported as real date cells
#   userfile_lo_sjis.csv       userfile_lo_valid.xlsx saved again by Calc as a CP932 CSV
#   userfile_lo_hokkaido.xlsx  1 doctor of 北海道 0110000011 with 医療機関コード left as 標準: Calc stores the
#                              number 110000011 (the leading zero is lost, as in Excel)
set -eu

OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A private profile, so a running LibreOffice or a first-start dialog never gets in the way.
LO="libreoffice -env:UserInstallation=file://$WORK/profile --headless"
HEADER='指定医区分,指定医番号,医療機関コード,医療機関名,勤務区分,部署（部門/診療科）,氏名 姓,氏名 名,カナ 姓,カナ 名,電話,メールアドレス,指定期間 開始,指定期間 終了'
TEXT='1/2/2/2/3/2/4/2/5/2/6/2/7/2/8/2/9/2/10/2/11/2/12/2/13/2/14/2'
DATES='1/2/2/2/3/2/4/2/5/2/6/2/7/2/8/2/9/2/10/2/11/2/12/2/13/5/14/5'
NUMBER_CODE='1/2/2/2/3/1/4/2/5/2/6/2/7/2/8/2/9/2/10/2/11/2/12/2/13/2/14/2'

# convert NAME COLUMN_FORMATS: $WORK/NAME/医療機関ユーザデータ.csv (from stdin) -> $OUT/userfile_lo_NAME.xlsx
convert() {
    mkdir -p "$WORK/$1"
    { echo "$HEADER"; cat; } > "$WORK/$1/医療機関ユーザデータ.csv"
    $LO --infilter="CSV:44,34,76,1,$2" --convert-to xlsx --outdir "$WORK/$1/out" "$WORK/$1/医療機関ユーザデータ.csv"
    cp "$WORK/$1/out/医療機関ユーザデータ.xlsx" "$OUT/userfile_lo_$1.xlsx"
}

convert valid "$TEXT" <<'EOF'
難病指定医,13-N-1001,1310000017,東京見本病院,主たる勤務先,脳神経内科,山田,太郎,ヤマダ,タロウ,03-1234-5678,yamada@example.jp,2026-04-01,2031-03-31
難病指定医,13-N-1002,1310000017,東京見本病院,主たる勤務先,小児科,鈴木,花子,スズキ,ハナコ,0312345679,,2026-04-01,2031-03-31
協力難病指定医,13-N-1003,1310000017,東京見本病院,主たる勤務先,,髙橋,一郎,タカハシ,イチロウ,,,,
EOF

convert dates "$DATES" <<'EOF'
小慢指定医,13-S-2001,1310000017,東京見本病院,主たる勤務先,小児科,佐藤,健,サトウ,ケン,03-1234-5600,sato@example.jp,2026/4/1,2031/3/31
小慢指定医,13-S-2002,1310000017,東京見本病院,主たる勤務先,小児外科,伊藤,美咲,イトウ,ミサキ,,,2025/10/15,2030/10/14
小慢指定医,13-S-2003,1310000017,東京見本病院,主たる勤務先,,渡辺,翔,ワタナベ,ショウ,,,2026/4/1,
EOF

convert hokkaido "$NUMBER_CODE" <<'EOF'
難病指定医,01-N-3001,0110000011,北海道見本病院,主たる勤務先,内科,北野,大地,キタノ,ダイチ,011-123-4567,,2026-04-01,2031-03-31
EOF

mkdir -p "$WORK/sjis"
$LO --convert-to "csv:Text - txt - csv (StarCalc):44,34,64,1" --outdir "$WORK/sjis" "$OUT/userfile_lo_valid.xlsx"
cp "$WORK/sjis/userfile_lo_valid.csv" "$OUT/userfile_lo_sjis.csv"

ls -l "$OUT"/userfile_lo_*
