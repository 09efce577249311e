"""The check tool as a wheel a hospital PC installs on its own: `make checktool` (python -m nanbyo.xmlio.checktool).

The wheel (`nanbyo_check-<contract version>.0+<hash of its files>-py3-none-any.whl`) holds the check's modules, the
schemas (xsd/), the form definitions (formdefs/) and the code tables (data/masters/, with their attribution) of this
version, and depends on lxml alone. Installed, it runs as `nanbyo-check PATH...` or `python -m nanbyo.check
PATH...`: the same code and messages as the server, offline. setuptools (pinned in requirements-dev.txt) builds it.
"""
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nanbyo.resources import REPOSITORY, resource
from nanbyo.xmlio.contract import VERSION

DISTRIBUTION = "nanbyo-check"
# What `python -m nanbyo.check` imports, and nothing else: no Flask, no database, no WTForms.
MODULES = ("nanbyo/__init__.py", "nanbyo/check.py", "nanbyo/codes.py", "nanbyo/content_rules.py",
           "nanbyo/document_codes.py", "nanbyo/formdefs.py", "nanbyo/master_files.py", "nanbyo/resources.py", "nanbyo/roles.py",
           "nanbyo/safe_files.py", "nanbyo/xmlio/__init__.py", "nanbyo/xmlio/archive.py", "nanbyo/xmlio/check.py",
           "nanbyo/xmlio/cli.py", "nanbyo/xmlio/contract.py", "nanbyo/xmlio/reader.py")
DATA = ("formdefs", "xsd", "data/masters")
LXML = "lxml>=5.3"
README = """# nanbyo-check

臨床調査個人票・医療意見書の XML を、データベース・ネットワークなしで検査します（nanbyo のサーバと同じ検査・同じメッセージ）。

    pip install {wheel}
    nanbyo-check PATH...            # ファイル・フォルダ・ZIP
    nanbyo-check --format json PATH
    python -m nanbyo.check PATH...

終了コード: 0 すべて問題なし、1 問題あり、2 使い方の誤り。XML の版: {version}。
マスタ（疾病・自治体コード）は nanbyo/package_data/data/masters/ にあります（出典は同じフォルダの README.md）。
"""


def version() -> str:
    """<contract version>.0+<hash of the modules and data>: the same files make the same version, any change to a
    rule, a master or a form definition another one."""
    digest = hashlib.sha256()
    files = [REPOSITORY / m for m in MODULES] + sorted(p for name in DATA for p in resource(name).rglob("*")
                                                       if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{VERSION}.0+{digest.hexdigest()[:12]}"


def stage(into: Path) -> Path:
    """The wheel's source tree in `into`: the modules, the data under nanbyo/package_data/, a pyproject.toml."""
    for module in MODULES:
        (into / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / module, into / module)
    for name in DATA:
        shutil.copytree(resource(name), into / "nanbyo" / "package_data" / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheel_version = version()
    (into / "README.md").write_text(README.format(wheel=f"nanbyo_check-{wheel_version}-py3-none-any.whl",
                                                  version=VERSION), encoding="utf-8")
    (into / "pyproject.toml").write_text(f"""[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "{wheel_version}"
description = "nanbyo: offline check of 臨床調査個人票・医療意見書 XML"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{LXML}"]

[project.scripts]
nanbyo-check = "nanbyo.xmlio.cli:main"

[tool.setuptools]
packages = ["nanbyo", "nanbyo.xmlio"]
include-package-data = false

[tool.setuptools.package-data]
nanbyo = ["package_data/**/*"]
""", encoding="utf-8")
    return into


def build(out_dir) -> Path:
    """Build the wheel into `out_dir`; its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nanbyo-check-") as tmp:
        source = stage(Path(tmp) / "src")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--no-build-isolation", "--wheel-dir", str(out_dir), str(source)],
                       check=True, cwd=tmp)
    return out_dir / f"nanbyo_check-{version()}-py3-none-any.whl"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else REPOSITORY / "build"))
