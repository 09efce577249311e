"""SQLAlchemy models, one module per aggregate."""
from models.institutions import Municipality, Institution  # noqa: F401
from models.accounts import User, Membership, Designation, ImportBatch, UserSession, HeldForm  # noqa: F401
from models.masters import NanbyoCategory, NanbyoDisease, ShomanGroup, ShomanDisease  # noqa: F401
from models.audit import OperationLog  # noqa: F401
from models.documents import Document, DocumentCorrection  # noqa: F401
from models.exports import ExportJob  # noqa: F401
from models.xml_imports import XmlImportJob  # noqa: F401
from models.scans import ScanFile  # noqa: F401
