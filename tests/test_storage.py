"""Storage against a real S3-protocol server (moto in server mode, over HTTP) and a folder."""

import io
import random
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import BotoCoreError
from moto.server import ThreadedMotoServer

from lib.storage import (
    FolderStorage,
    InvalidKey,
    ObjectMissing,
    S3Storage,
    StorageError,
    storage_from_env,
)

BIG = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
CREDS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_admin(s3_endpoint):
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )


@pytest.fixture
def s3(s3_endpoint, s3_admin):
    bucket = f"test-{uuid.uuid4().hex[:12]}"  # one bucket per test
    s3_admin.create_bucket(Bucket=bucket)
    return S3Storage(bucket, endpoint_url=s3_endpoint, region="us-east-1", **CREDS)


@pytest.fixture(params=["folder", "s3"])
def storage(request, tmp_path):
    if request.param == "folder":
        return FolderStorage(tmp_path / "storage")
    return request.getfixturevalue("s3")


def test_put_size_head_and_open_at_offsets(storage):
    storage.put("org/job/leads.csv", BIG)
    assert storage.size("org/job/leads.csv") == len(BIG)
    assert storage.read_head("org/job/leads.csv", 100) == BIG[:100]
    assert storage.read_head("org/job/leads.csv", 0) == b""
    assert storage.read_head("org/job/leads.csv", len(BIG) + 10) == BIG
    for offset in (0, 1, 1_000_000, len(BIG) - 1):
        with storage.open("org/job/leads.csv", offset) as f:
            assert f.read(10) == BIG[offset : offset + 10]
            assert f.read() == BIG[offset + 10 :]
    # a cursor at (or past) the end reads nothing rather than failing
    for offset in (len(BIG), len(BIG) + 5):
        with storage.open("org/job/leads.csv", offset) as f:
            assert f.read() == b""


def test_stream_decodes_as_text(storage):
    storage.put("a.csv", "Prénom;Nom\r\nÉlodie;Dupré\r\n".encode("cp1252"))
    with io.TextIOWrapper(storage.open("a.csv", 12), encoding="cp1252", newline="") as text:
        assert text.read() == "Élodie;Dupré\r\n"


def test_put_from_stream_and_empty_object(storage):
    storage.put("s.bin", io.BytesIO(BIG[:5000]))
    assert storage.read_head("s.bin", 6000) == BIG[:5000]
    storage.put("empty.csv", b"")
    assert storage.size("empty.csv") == 0
    assert storage.read_head("empty.csv", 10) == b""
    with storage.open("empty.csv") as f:
        assert f.read() == b""


def test_missing_object(storage):
    with pytest.raises(ObjectMissing) as e:
        storage.size("nope.csv")
    assert e.value.key == "nope.csv"
    with pytest.raises(ObjectMissing):
        storage.open("nope.csv", 10)
    with pytest.raises(ObjectMissing):
        storage.read_head("nope.csv", 10)
    with pytest.raises(ObjectMissing):
        storage.read_head("nope.csv", 0)


def test_delete_is_idempotent(storage):
    storage.put("d.csv", b"x")
    storage.delete("d.csv")
    storage.delete("d.csv")
    with pytest.raises(ObjectMissing):
        storage.size("d.csv")


@pytest.mark.parametrize("key", ["", ".", "../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\0b"])
def test_escaping_keys_are_refused(storage, key):
    with pytest.raises(InvalidKey):
        storage.put(key, b"x")
    with pytest.raises(InvalidKey):
        storage.open(key)


def test_folder_refuses_symlink_out_of_root(tmp_path):
    (tmp_path / "outside.txt").write_bytes(b"secret")
    root = tmp_path / "storage"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidKey):
        FolderStorage(root).open("link/outside.txt")


def test_s3_open_is_one_ranged_get_transferring_only_the_tail(s3):
    s3.put("big.csv", BIG)
    sent, received = [], []
    events = s3.client.meta.events
    events.register("before-send.s3.GetObject", lambda request, **_: sent.append(request))
    events.register(
        "after-call.s3.GetObject",
        lambda http_response, parsed, **_: received.append((http_response.status_code, parsed)),
    )
    offset = 2_000_000
    with s3.open("big.csv", offset) as f:
        first = f.read(5)
        rest = f.read()
    assert first + rest == BIG[offset:]
    assert len(sent) == 1 and sent[0].headers["Range"] == f"bytes={offset}-".encode()
    status, parsed = received[0]
    assert status == 206
    assert parsed["ContentLength"] == len(BIG) - offset
    assert parsed["ContentRange"] == f"bytes {offset}-{len(BIG) - 1}/{len(BIG)}"

    assert s3.read_head("big.csv", 64) == BIG[:64]
    assert sent[1].headers["Range"] == b"bytes=0-63"
    assert received[1][1]["ContentLength"] == 64


def test_s3_sends_no_flexible_checksums(s3):
    # S3-compatible servers (Supabase Storage included) reject or ignore botocore's
    # default CRC32 trailers; the client must only send checksums an operation requires.
    headers = []
    s3.client.meta.events.register("before-send.s3.*", lambda request, **_: headers.append(dict(request.headers)))
    s3.put("c.csv", b"a;b\r\n")
    s3.put("d.csv", io.BytesIO(b"a;b\r\n"))
    s3.read_head("c.csv", 3)
    assert len(headers) == 3
    for sent in headers:
        names = {name.lower() for name in sent}
        assert not any(n.startswith("x-amz-checksum") or n == "x-amz-trailer" for n in names)
        assert "x-amz-sdk-checksum-algorithm" not in names


def test_s3_presigned_put_url_accepts_a_plain_http_put(s3):
    url = s3.upload_url("uploads/from-browser.csv", expires=600)
    assert url.startswith("http://127.0.0.1:")  # our own presigner, so S310 below is moot
    assert "X-Amz-Signature=" in url and "/uploads/from-browser.csv?" in url
    # urllib would default to a form content type, which moto tries to parse as a form
    headers = {"Content-Type": "text/csv"}
    request = urllib.request.Request(url, data=BIG[:4096], method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert s3.read_head("uploads/from-browser.csv", 10_000) == BIG[:4096]


def test_s3_unreachable_is_a_storage_error_with_its_cause():
    down = S3Storage("b", endpoint_url="http://127.0.0.1:9", region="us-east-1", **CREDS)
    with pytest.raises(StorageError) as e:
        down.size("x.csv")
    assert not isinstance(e.value, ObjectMissing)
    assert isinstance(e.value.__cause__, BotoCoreError)


def test_s3_missing_bucket_is_object_missing(s3_endpoint):
    storage = S3Storage("no-such-bucket", endpoint_url=s3_endpoint, region="us-east-1", **CREDS)
    with pytest.raises(ObjectMissing):
        storage.open("x.csv")


def test_folder_upload_url_needs_a_signing_key_and_is_checked(tmp_path):
    import urllib.parse

    from lib.storage import FileTooLarge, UploadRefused

    assert FolderStorage(tmp_path).upload_url("a.csv") is None
    storage = FolderStorage(tmp_path, signing_key="k" * 32, base_url="http://app.test/", max_bytes=100)
    url = storage.upload_url("org/a.csv", expires=60)
    assert url is not None and url.startswith("http://app.test/_local/storage/org/a.csv?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert storage.check_upload("org/a.csv", query, 100) == 100
    with pytest.raises(FileTooLarge):
        storage.check_upload("org/a.csv", query, 101)
    for bad in ({**query, "signature": "0" * 64}, {**query, "max_bytes": "1000"}, {"expires": "1"}):
        with pytest.raises(UploadRefused):
            storage.check_upload("org/a.csv", bad, 10)
    with pytest.raises(UploadRefused):
        storage.check_upload("org/b.csv", query, 10)  # signed for another key
    with pytest.raises(UploadRefused, match="Content-Length"):
        storage.check_upload("org/a.csv", query, None)
    other = FolderStorage(tmp_path, signing_key="o" * 32, base_url="http://app.test")
    with pytest.raises(UploadRefused):
        other.check_upload("org/a.csv", query, 10)  # another stack's key
    expired = storage.upload_url("org/a.csv", expires=-1)
    assert expired is not None
    with pytest.raises(UploadRefused, match="expired"):
        storage.check_upload("org/a.csv", dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(expired).query)), 10)


def test_storage_from_env(tmp_path):
    local = storage_from_env({}, tmp_path)
    assert isinstance(local, FolderStorage) and local.root == (tmp_path / "storage").resolve()

    env = {
        "SUPABASE_URL": "https://abcd.supabase.co/",
        "S3_ACCESS_KEY_ID": "k",
        "S3_SECRET_ACCESS_KEY": "s",
    }
    remote = storage_from_env(env, tmp_path)
    assert isinstance(remote, S3Storage) and remote.bucket == "imports"
    assert remote.client.meta.endpoint_url == "https://abcd.supabase.co/storage/v1/s3"
    assert remote.client.meta.region_name == "us-east-1"
    url = remote.upload_url("j/f.csv")
    assert url.startswith("https://abcd.supabase.co/storage/v1/s3/imports/j/f.csv?")

    explicit = storage_from_env(
        {
            **env,
            "S3_ENDPOINT_URL": "https://abcd.storage.supabase.co/storage/v1/s3",
            "S3_BUCKET": "leads",
            "S3_REGION": "eu-west-3",
        },
        tmp_path,
    )
    assert explicit.client.meta.endpoint_url.startswith("https://abcd.storage.supabase.co")
    assert explicit.client.meta.region_name == "eu-west-3" and explicit.bucket == "leads"

    with pytest.raises(StorageError, match="S3_SECRET_ACCESS_KEY"):
        storage_from_env({"S3_ACCESS_KEY_ID": "k", "SUPABASE_URL": "https://x.supabase.co"}, tmp_path)
    with pytest.raises(StorageError, match="SUPABASE_URL"):
        storage_from_env({"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}, Path(tmp_path))
