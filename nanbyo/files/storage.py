"""The file store (issue 15): where the scans, the XML import jobs' uploads, the user-file previews waiting for
confirmation and the export files are kept.

Two kinds, chosen by NANBYO_FILE_STORE_URL:
- unset: local folders, each area in its own (NANBYO_SCAN_DIR, NANBYO_IMPORT_DIR, NANBYO_UPLOAD_DIR,
  NANBYO_EXPORT_DIR; by default under the instance folder), files readable by their owner alone;
- `s3://bucket/prefix`: S3-compatible object storage (AWS S3, MinIO, …) through boto3, each area under
  `prefix/<area>/`, so that several app servers and task-queue consumers share one store. NANBYO_S3_ENDPOINT_URL
  names a server other than AWS, NANBYO_S3_REGION its region; the credentials are boto3's usual ones
  (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role). Objects get no ACL: private to the
  bucket's owner.

The store keeps bytes it is given: the callers encrypt what holds personal data before (scans, import uploads,
previews), so the store never sees it in the clear. Names are the callers' random names; a write never replaces an
object already there (replace(), for the key rotation's re-encryption, is the one that does). The backends' own errors come out as OSError: FileNotFoundError, StoreFull (no room: a
refusal the callers explain with files.STORE_FULL) or StoreUnavailable (the storage does not answer or refuses).
"""
import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app

from nanbyo.files import open_private

AREAS = {"scans": "NANBYO_SCAN_DIR", "imports": "NANBYO_IMPORT_DIR", "uploads": "NANBYO_UPLOAD_DIR",
         "exports": "NANBYO_EXPORT_DIR"}
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")  # no folder, no dot file: a name cannot leave its area
PARTIAL_SUFFIX = ".part"
BLOCK = 1 << 20


class StoreFull(OSError):
    """The storage refused for want of room (disk full, quota, an object too large)."""


class StoreUnavailable(OSError):
    """The storage did not answer, or refused for another reason (its log line says which)."""


@dataclass(frozen=True)
class Entry:
    name: str
    modified: datetime  # aware (UTC)
    size: int


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix ending in "/" or empty) of `s3://bucket[/prefix]`; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"NANBYO_FILE_STORE_URL は s3://バケット名/接頭辞 の形で指定してください（{url!r}）。")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def for_area(area: str, app=None):
    """The store of one area ("scans", "imports", "uploads", "exports") as the app's configuration says."""
    if area not in AREAS:
        raise KeyError(area)
    app = app or current_app
    url = app.config.get("NANBYO_FILE_STORE_URL")
    if not url:
        return LocalStore(app.config[AREAS[area]])
    bucket, prefix = parse_url(url)
    return S3Store(_client(app), bucket, f"{prefix}{area}/")


def _checked(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise ValueError(f"not a stored file name: {name!r}")
    return name


class _Store:
    def remove_strays(self, named, before: datetime):
        """Delete what no row names (`named`) and was last written before `before`: what a run that stopped left."""
        self.remove(*(e.name for e in self.entries() if e.name not in named and e.modified < before))

    def discard(self, *names):
        """remove(), for a clean-up after a failure: a storage that fails again is logged by name, not raised (what it
        leaves is ciphertext, or an export; in "imports" and "exports" the periodic clean-up takes it later)."""
        try:
            self.remove(*names)
        except OSError as e:
            current_app.logger.error("file store: could not delete %s (%s)", ", ".join(names)[:500], e)

    def read(self, name) -> bytes:
        with self.open(name) as stream:
            return stream.read()


class LocalStore(_Store):
    def __init__(self, folder):
        self.folder = Path(folder)

    def __str__(self):
        return str(self.folder)

    def path(self, name) -> Path:
        return self.folder / _checked(name)

    def _private(self, name):
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return open_private(self.path(name))

    def put(self, name, data: bytes):
        out = self._private(name)  # O_EXCL: a file already there raises FileExistsError and is left alone
        try:
            with out:
                out.write(data)
        except BaseException:
            self.remove(name)  # half written (the disk filled up): not kept
            raise

    def replace(self, name, data: bytes):
        """Put `data` in place of the file `name` holds, in one step (a reader meets the old or the new, whole): the
        key rotation's re-encryption, which keeps names (they are bound into the ciphertext)."""
        partial = self.path(name + PARTIAL_SUFFIX)
        self.remove(partial.name)
        try:
            with self._private(partial.name) as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path(name))
        except BaseException:
            self.remove(partial.name)
            raise

    @contextmanager
    def writer(self, name):
        """A file to write `name` into; it appears whole when the block ends, and not at all if it fails."""
        final, partial = self.path(name), self.path(name + PARTIAL_SUFFIX)
        try:
            with self._private(partial.name) as out:
                yield out
            os.link(partial, final)  # unlike a rename, never replaces a file already there
        finally:
            partial.unlink(missing_ok=True)

    def open(self, name):
        return open(self.path(name), "rb")

    def exists(self, name) -> bool:
        return self.path(name).is_file()

    def size(self, name) -> int:
        return self.path(name).stat().st_size

    def remove(self, *names):
        for name in names:
            self.path(name).unlink(missing_ok=True)

    def entries(self):
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.is_file():
                stat = path.stat()
                yield Entry(path.name, datetime.fromtimestamp(stat.st_mtime, timezone.utc), stat.st_size)


def _client(app):
    """One boto3 client per process and settings (boto3 clients are thread-safe); made on first use, so after a
    gunicorn fork."""
    settings = (app.config.get("NANBYO_S3_ENDPOINT_URL") or None, app.config.get("NANBYO_S3_REGION") or None)
    cached = app.extensions.get("nanbyo_s3")
    if cached and cached[0] == settings:
        return cached[1]
    import boto3
    from botocore.config import Config
    endpoint, region = settings
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                    # MinIO and most servers other than AWS answer at the endpoint's path, not a bucket host name.
                    s3={"addressing_style": "path" if endpoint else "auto"})
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)
    app.extensions["nanbyo_s3"] = (settings, client)
    return client


# S3 error codes that mean "no room" (AWS, MinIO and others).
FULL_CODES = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded",
              "InsufficientStorage", "StorageFull"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


@contextmanager
def _translated(what):
    """The S3 client's errors as the OSErrors callers handle."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        yield
    except (ClientError, S3UploadFailedError) as e:
        cause = e if isinstance(e, ClientError) else (e.__cause__ or e.__context__)  # boto3 raises it inside except
        code = cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
        if code in MISSING_CODES:
            raise FileNotFoundError(errno.ENOENT, f"no such object: {what}") from e
        if code == "PreconditionFailed":
            raise FileExistsError(errno.EEXIST, f"object already there: {what}") from e
        if code in FULL_CODES:
            raise StoreFull(errno.ENOSPC, f"object storage full ({code}): {what}") from e
        raise StoreUnavailable(errno.EIO, f"object storage refused ({code or e}): {what}") from e
    except BotoCoreError as e:  # no connection, a timeout, no credentials
        raise StoreUnavailable(errno.EIO, f"object storage unavailable ({e}): {what}") from e


class S3Store(_Store):
    def __init__(self, client, bucket, prefix):
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def __str__(self):
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name) -> str:
        return self.prefix + _checked(name)

    def ping(self):
        """Raise StoreUnavailable unless the bucket answers (/healthz)."""
        with _translated(self.bucket):
            self.client.head_bucket(Bucket=self.bucket)

    def put(self, name, data: bytes):
        with _translated(self.key(name)):
            # If-None-Match: * makes the storage refuse to replace an object already there.
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, IfNoneMatch="*")

    def replace(self, name, data: bytes):
        """Put `data` in place of the object `name` (an object's replacement is atomic): see LocalStore.replace."""
        with _translated(self.key(name)):
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    @contextmanager
    def writer(self, name):
        """A temporary file to write `name` into; uploaded when the block ends (in parts: exports can be hundreds of
        MB), never if it fails. The names are random: a multipart upload cannot ask If-None-Match."""
        key = self.key(name)
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            with _translated(key):
                self.client.upload_fileobj(spool, self.bucket, key)

    def open(self, name):
        with _translated(self.key(name)):
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]

    def read(self, name) -> bytes:
        with _translated(self.key(name)):  # a connection lost in the middle of the body too
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()

    def exists(self, name) -> bool:
        try:
            self.size(name)
        except FileNotFoundError:
            return False
        return True

    def size(self, name) -> int:
        with _translated(self.key(name)):
            return self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"]

    def remove(self, *names):
        keys = [self.key(name) for name in names]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            chunk = keys[start:start + 1000]
            with _translated(chunk[0]):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in chunk], "Quiet": True})
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise StoreUnavailable(errno.EIO, f"object storage did not delete {error.get('Key')} "
                                       f"({error.get('Code')})")

    def entries(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        with _translated(self.prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if NAME.fullmatch(name):
                        yield Entry(name, item["LastModified"].astimezone(timezone.utc), item["Size"])

    def remove_strays(self, named, before: datetime):
        super().remove_strays(named, before)
        # Parts of an upload a stopped worker never completed are kept (and billed) until aborted.
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
        with _translated(self.prefix):
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < before:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])


def copy_out(store, name, path):
    """Object `name` of `store` into a new private file at `path`, in blocks."""
    with store.open(name) as source, open_private(path) as out:
        shutil.copyfileobj(source, out, BLOCK)
