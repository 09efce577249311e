"""Validation of the public codes the system keys on."""
import re

# 指定医番号: the issuing 自治体's own numbering (英数字とハイフン, 20文字以内).
DOCTOR_NUMBER = re.compile(r"^[0-9A-Za-z-]{1,20}$")


def municipality_check_digit(first5: str) -> int:
    """全国地方公共団体コード check digit: weights 6,5,4,3,2, then (11 - sum % 11) % 10."""
    total = sum(int(d) * w for d, w in zip(first5, (6, 5, 4, 3, 2)))
    return (11 - total % 11) % 10


def municipality_code_error(code: str | None) -> str | None:
    """None when valid, else a Japanese message."""
    if not code or not re.fullmatch(r"\d{6}", code):
        return "全国地方公共団体コードは6桁の数字です。"
    if int(code[5]) != municipality_check_digit(code[:5]):
        return "全国地方公共団体コードの検査数字が正しくありません。"
    return None


def institution_code_error(code: str | None) -> str | None:
    """医療機関コード: 10 digits (都道府県番号 2 + 点数表番号 1 + 医療機関コード 7)."""
    if not code or not re.fullmatch(r"\d{10}", code):
        return "医療機関コードは10桁の数字です。"
    if not 1 <= int(code[:2]) <= 47:
        return "医療機関コードの先頭2桁（都道府県番号）が正しくありません。"
    return None
