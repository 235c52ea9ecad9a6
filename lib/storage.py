"""Where uploaded lead files live: Supabase Storage over its S3 protocol, or a local folder.

Both implementations share one small interface (`Storage`) and are chosen once, by
`storage_from_env`; nothing else in the package knows which one it holds.

Environment (read by `storage_from_env`):

- `S3_ENDPOINT_URL`: the S3 endpoint, e.g. `https://<ref>.supabase.co/storage/v1/s3`
  (or the direct host `https://<ref>.storage.supabase.co/storage/v1/s3`). When unset it is
  derived from `SUPABASE_URL` (or `NEXT_PUBLIC_SUPABASE_URL`) + `/storage/v1/s3`.
- `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`: a key pair generated in the Supabase dashboard
  (Storage > S3). Server-side only: these keys bypass RLS.
- `S3_BUCKET`: bucket holding the uploads, default `imports`.
- `S3_REGION`: the project's region as shown next to the endpoint in the dashboard. Default
  `us-east-1`, which Supabase Storage accepts unless it enforces the region.

With none of the S3 settings, files live under `<LOCAL_DATA_DIR>/storage/`. Setting only
some of them is an error, so a typo cannot silently switch a deployment to a local folder.
The folder's upload URLs (like S3's presigned PUT URLs) are signed with
`LOCAL_STORAGE_SIGNING_KEY` (the local stack sets it) and point at `APP_URL`, where the
local stack's site takes the PUT (lib/local/site.py); without that key there is none.
`IMPORT_MAX_FILE_MB` (default 256) bounds what such a URL accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lib.config import MAX_FILE_MB, max_file_mb, supabase_url
from lib.errors import LeadImportError

_MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_CHUNK = 1024 * 1024


class StorageError(LeadImportError):
    """Storage is unavailable; retry later."""

    # Anything but a missing object is treated as transient: a 5xx makes QStash retry.
    status = 503


class ObjectMissing(StorageError):
    """The file is not in storage."""

    status = 404

    def __init__(self, key: str) -> None:
        super().__init__(f"file not found in storage: {key}")
        self.key = key


class InvalidKey(StorageError, ValueError):
    """Invalid storage key: empty, absolute, or climbing out of the storage root."""

    status = 400


class UploadRefused(StorageError):
    """An upload URL that is not valid (tampered, expired) or a body it does not allow."""

    status = 403


class FileTooLarge(UploadRefused):
    """The file is larger than the upload URL allows."""

    status = 413


class Storage(Protocol):
    def size(self, key: str) -> int: ...
    def open(self, key: str, offset: int = 0) -> BinaryIO: ...
    def read_head(self, key: str, n: int) -> bytes: ...
    def put(self, key: str, data: bytes | BinaryIO) -> None: ...
    def delete(self, key: str) -> None: ...
    def upload_url(self, key: str, expires: int = 3600) -> str | None: ...


def check_key(key: str) -> str:
    # Checked for both backends so a key that works locally also works on S3 and vice versa.
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or "\\" in key or "\0" in key or ".." in parts:
        raise InvalidKey(f"invalid storage key: {key!r}")
    return key


UPLOAD_PATH = "/_local/storage/"  # where the local stack's site takes uploads (lib/local/site.py)


class FolderStorage:
    """Files under `root`; the local stack's stand-in for the bucket.

    With a `signing_key` and the app's `base_url`, `upload_url` gives a signed, expiring PUT
    URL bounded to `max_bytes`, checked by `check_upload` (HMAC-SHA256 over method, key,
    expiry and bound, as an S3 presigned URL signs its own)."""

    def __init__(
        self,
        root: Path,
        *,
        signing_key: str | None = None,
        base_url: str | None = None,
        max_bytes: int = MAX_FILE_MB * 1024 * 1024,
    ) -> None:
        self.root = Path(root).resolve()
        self.signing_key = signing_key
        self.base_url = base_url.rstrip("/") if base_url else None
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink pointing outside
            raise InvalidKey(f"invalid storage key: {key!r}")
        return path

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(key)
        return path.stat().st_size

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        try:
            f = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissing(key) from None
        except OSError as e:
            raise StorageError(f"cannot read {key}: {e}") from e
        f.seek(offset)
        return f

    def read_head(self, key: str, n: int) -> bytes:
        with self.open(key) as f:
            return f.read(max(n, 0))

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, bytes | bytearray | memoryview):
                    f.write(data)
                else:
                    while chunk := data.read(_CHUNK):
                        f.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)  # idempotent, like S3 DeleteObject

    def upload_url(self, key: str, expires: int = 3600) -> str | None:
        """A signed PUT URL for `key`, valid `expires` seconds; None without a signing key."""
        self._path(key)
        if not (self.signing_key and self.base_url):
            return None
        until = int(time.time()) + expires
        query = {"expires": str(until), "max_bytes": str(self.max_bytes)}
        query["signature"] = self._signature(key, until, self.max_bytes)
        return f"{self.base_url}{UPLOAD_PATH}{urllib.parse.quote(key)}?{urllib.parse.urlencode(query)}"

    def _signature(self, key: str, expires: int, max_bytes: int) -> str:
        assert self.signing_key
        text = f"PUT\n{key}\n{expires}\n{max_bytes}"
        return hmac.new(self.signing_key.encode(), text.encode(), hashlib.sha256).hexdigest()

    def check_upload(self, key: str, query: Mapping[str, str], length: int | None) -> int:
        """Raise UploadRefused unless `query` signs a PUT of `key` that has not expired and
        `length` bytes (the Content-Length, required) fit its bound; the bound."""
        if not self.signing_key:
            raise UploadRefused("this storage takes no uploads by URL")
        try:
            expires, max_bytes = int(query["expires"]), int(query["max_bytes"])
            signature = query["signature"]
        except (KeyError, ValueError):
            raise UploadRefused("the upload URL is incomplete: ask for a new one") from None
        self._path(key)
        if not hmac.compare_digest(signature, self._signature(key, expires, max_bytes)):
            raise UploadRefused("the upload URL's signature does not match: ask for a new one")
        if expires < time.time():
            raise UploadRefused("the upload URL has expired: ask for a new one")
        if length is None:
            raise UploadRefused("an upload needs a Content-Length")
        if length > max_bytes:
            raise FileTooLarge(f"the file is {length} bytes; this upload URL takes at most {max_bytes}")
        return max_bytes


class _S3Body(io.RawIOBase):
    """A GetObject body whose network errors surface as StorageError, not botocore's."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except BotoCoreError as e:
            raise StorageError(f"reading from storage failed: {e}") from e
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Storage:
    """A bucket behind an S3-compatible endpoint (Supabase Storage, MinIO, AWS)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
    ) -> None:
        self.bucket = bucket
        config = Config(
            signature_version="s3v4",  # Supabase only accepts SigV4, presigned URLs included
            # Endpoints with a path (…/storage/v1/s3) cannot host virtual-hosted buckets.
            s3={"addressing_style": "path"},
            # botocore >= 1.36 adds CRC checksums to every upload and validates them on
            # download; S3-compatible servers reject or lack them, so only when required.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # A slice has a time budget: fail fast and let QStash retry the whole slice.
            connect_timeout=5,
            read_timeout=20,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=config,
        )

    def _call(self, key: str, operation: str, ok_codes: tuple[str, ...] = (), **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, Key=check_key(key), **params)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ok_codes:
                return None
            if code in _MISSING_CODES:
                raise ObjectMissing(key) from e
            raise StorageError(f"storage {operation} failed for {key}: {e}") from e
        except BotoCoreError as e:  # connection errors and timeouts, after botocore's retries
            raise StorageError(f"storage {operation} failed for {key}: {e}") from e

    def _get_range(self, key: str, first: int, last: int | None = None) -> BinaryIO:
        # 416: the range starts at or past the end (an empty object, a finished cursor).
        span = f"bytes={first}-{'' if last is None else last}"
        response = self._call(key, "get_object", ("InvalidRange", "416"), Range=span)
        if response is None:
            return io.BytesIO(b"")
        return io.BufferedReader(_S3Body(response["Body"]), buffer_size=_CHUNK)

    def size(self, key: str) -> int:
        return self._call(key, "head_object")["ContentLength"]

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        # One ranged GetObject, streamed: the bytes before `offset` never cross the network.
        return self._get_range(key, offset)

    def read_head(self, key: str, n: int) -> bytes:
        if n <= 0:
            self.size(key)  # still report a missing object
            return b""
        with self._get_range(key, 0, n - 1) as body:
            return body.read()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        if isinstance(data, bytes | bytearray | memoryview):
            self._call(key, "put_object", Body=bytes(data))
        else:
            # upload_fileobj streams and switches to multipart for large files.
            try:
                self.client.upload_fileobj(data, self.bucket, check_key(key))
            except (ClientError, BotoCoreError) as e:
                raise StorageError(f"storage upload failed for {key}: {e}") from e

    def delete(self, key: str) -> None:
        self._call(key, "delete_object")

    def upload_url(self, key: str, expires: int = 3600) -> str | None:
        """A presigned PUT URL: the browser uploads straight to the bucket."""
        params = {"Bucket": self.bucket, "Key": check_key(key)}
        return self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)


def storage_from_env(env: Mapping[str, str], local_dir: Path) -> Storage:
    project = supabase_url(env)
    endpoint = env.get("S3_ENDPOINT_URL") or (project and project + "/storage/v1/s3")
    key_id, secret = env.get("S3_ACCESS_KEY_ID"), env.get("S3_SECRET_ACCESS_KEY")
    if not (key_id or secret or env.get("S3_ENDPOINT_URL")):
        return FolderStorage(
            Path(local_dir) / "storage",
            signing_key=env.get("LOCAL_STORAGE_SIGNING_KEY") or None,
            base_url=env.get("APP_URL") or None,  # the local stack always sets it
            max_bytes=max_file_mb(env) * 1024 * 1024,
        )
    missing = [
        name
        for name, value in [
            ("S3_ENDPOINT_URL (or SUPABASE_URL)", endpoint),
            ("S3_ACCESS_KEY_ID", key_id),
            ("S3_SECRET_ACCESS_KEY", secret),
        ]
        if not value
    ]
    if missing:
        raise StorageError(f"S3 storage is partly configured; missing: {', '.join(missing)}")
    assert endpoint and key_id and secret  # for the type checker
    return S3Storage(
        env.get("S3_BUCKET") or "imports",
        endpoint_url=endpoint,
        region=env.get("S3_REGION") or "us-east-1",
        access_key_id=key_id,
        secret_access_key=secret,
    )
