"""Where the files the code reads live: beside the code in the repository, or inside the package when it is the
check tool's wheel (`make checktool` puts them under nanbyo/package_data/)."""
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "package_data"
REPOSITORY = Path(__file__).resolve().parent.parent


def resource(name: str) -> Path:
    """The folder `name` ("formdefs", "xsd", "data/masters") of this installation."""
    packaged = PACKAGE_DATA / name
    return packaged if packaged.is_dir() else REPOSITORY / name
