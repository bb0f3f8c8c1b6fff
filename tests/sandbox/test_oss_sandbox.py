"""The OSS emulator, driven by the unmodified ``oss2`` SDK over loopback HTTP (never mocked)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import oss2
import pytest
import requests
from oss2.utils import Crc64 as Oss2Crc64

from eascomfy import crc64
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.oss import OssSandbox
from eascomfy.sandbox.oss.store import OssStore

REGION = "cn-hangzhou"
KIB = 1024
_names = itertools.count()


def oss2_crc(data: bytes) -> int:
    reference = Oss2Crc64()
    reference.update(data)
    return reference.crc


def make_bucket(sandbox: OssSandbox, name: str | None = None, v4: bool = False, secret: str = SANDBOX_ACCESS_KEY_SECRET,
                ak: str = SANDBOX_ACCESS_KEY_ID) -> oss2.Bucket:
    name = name or f"bkt-{next(_names)}"
    if v4:
        return oss2.Bucket(oss2.AuthV4(ak, secret), sandbox.url, name, region=REGION)
    return oss2.Bucket(oss2.Auth(ak, secret), sandbox.url, name)


@pytest.fixture
def sandbox() -> Iterator[OssSandbox]:
    """A fresh emulator per test (it starts in milliseconds): nothing recorded or injected by one
    test is seen by the next. This module checks both signers, so V1 is allowed (an old account's
    old bucket); that V1 is refused by default is tested in tests/storage/test_signature_v4.py."""
    with OssSandbox(region=REGION, fidelity=Fidelity(signature_v1="accepted")) as oss:
        yield oss


@pytest.fixture
def bucket(sandbox: OssSandbox) -> Iterator[oss2.Bucket]:
    b = make_bucket(sandbox)
    b.create_bucket()
    yield b
    sandbox.faults.clear()


@pytest.fixture
def upload_store(tmp_path: Path) -> oss2.ResumableStore:
    return oss2.ResumableStore(root=str(tmp_path / "checkpoints"))


def write_file(path: Path, size: int) -> bytes:
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    return data


# -- crc64 ------------------------------------------------------------------------------------------


def test_crc64_known_vector_and_empty() -> None:
    assert crc64.crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64.crc64(b"") == 0
    assert crc64._crc64_python(b"123456789") == 0x995DC9BBDF1939FA


@pytest.mark.parametrize("size", [1, 7, 4096, 100_003])
def test_crc64_matches_oss2_streamed_and_combined(size: int) -> None:
    head, tail = os.urandom(3000), os.urandom(size)
    expected = oss2_crc(head + tail)
    assert crc64.crc64(head + tail) == expected
    assert crc64.crc64(tail, crc64.crc64(head)) == expected
    assert crc64._crc64_python(tail, crc64._crc64_python(head)) == expected
    assert crc64.combine(crc64.crc64(head), crc64.crc64(tail), len(tail)) == expected
    assert Oss2Crc64().combine(crc64.crc64(head), crc64.crc64(tail), len(tail)) == expected
    assert crc64.combine(expected, 0, 0) == expected


def test_crc64_runs_in_c() -> None:
    assert crc64.USING_C_EXTENSION  # oss2 depends on crcmod, whose C extension is what makes uploads fast


# -- buckets ----------------------------------------------------------------------------------------


def test_bucket_info_location_and_idempotent_create(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    bucket.create_bucket()  # the same owner again: 200, unchanged
    info = bucket.get_bucket_info()
    assert info.name == bucket.bucket_name
    assert info.location == f"oss-{REGION}"
    assert bucket.get_bucket_location().location == f"oss-{REGION}"
    names = [b.name for b in oss2.BucketIterator(oss2.Service(bucket.auth, sandbox.url))]
    assert bucket.bucket_name in names


def test_bucket_in_another_region(sandbox: OssSandbox) -> None:
    """A bucket addressed through another region's endpoint: 403 AccessDenied, EC 0003-00001403,
    and the endpoint to use (OSS's 403 page); GetBucketLocation answers from any endpoint."""
    sandbox.create_bucket("far-away", region="cn-beijing")
    far = make_bucket(sandbox, "far-away")
    assert far.get_bucket_location().location == "oss-cn-beijing"
    for call in (far.get_bucket_info, lambda: far.put_object("k", b"x"), far.list_objects_v2,
                 lambda: far.get_object("k"), far.create_bucket):
        with pytest.raises(oss2.exceptions.AccessDenied) as info:
            call()
        assert "must be addressed using the specified endpoint" in info.value.message
        assert info.value.details["Endpoint"] == "oss-cn-beijing.aliyuncs.com"
        assert info.value.ec == "0003-00001403" and info.value.details["Bucket"] == "far-away"
    with pytest.raises(oss2.exceptions.ServerError) as head:
        far.head_object("k")
    assert (head.value.status, head.value.ec) == (403, "0003-00001403")  # HEAD: x-oss-err / x-oss-ec
    assert "far-away" in [b.name for b in oss2.Service(oss2.Auth(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET),
                                                        sandbox.url).list_buckets().buckets]
    control = f"{sandbox.url}/_sandbox/fidelity"  # as a test in another process switches it
    assert requests.post(control, json={"bucket_location": "bucket_endpoint"}).json()["bucket_location"] == "bucket_endpoint"
    try:
        with pytest.raises(oss2.exceptions.AccessDenied):
            far.get_bucket_location()
    finally:
        requests.post(control, json={"bucket_location": "any_endpoint"})
    assert sandbox.fidelity.bucket_location == "any_endpoint"


def test_missing_bucket(sandbox: OssSandbox) -> None:
    missing = make_bucket(sandbox, "no-such-bucket")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.get_bucket_info()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.list_objects_v2()


def test_delete_bucket(sandbox: OssSandbox) -> None:
    doomed = make_bucket(sandbox)
    doomed.create_bucket()
    doomed.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        doomed.delete_bucket()
    doomed.delete_object("k")
    doomed.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        doomed.get_bucket_info()


# -- objects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["plain.txt", "dir/sub dir/a+b%c.bin", "模型/ckpt 1.safetensors", "a//b/../c"])
def test_put_get_head_delete(sandbox: OssSandbox, bucket: oss2.Bucket, key: str) -> None:
    data = os.urandom(5000)
    put = bucket.put_object(key, data, headers={"x-oss-meta-origin": "test"})
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    assert put.crc == oss2_crc(data)

    got = bucket.get_object(key)
    assert got.read() == data
    assert got.server_crc == oss2_crc(data) == got.client_crc
    assert got.headers["x-oss-meta-origin"] == "test"
    assert got.last_modified > 0

    head = bucket.head_object(key)
    assert head.content_length == len(data)
    assert head.server_crc == oss2_crc(data)
    assert head.etag == put.etag
    assert bucket.object_exists(key)
    assert sandbox.object_bytes(bucket.bucket_name, key) == data
    info = sandbox.object_info(bucket.bucket_name, key)
    assert (info["size"], info["crc64"], info["etag"]) == (len(data), oss2_crc(data), put.etag)

    bucket.delete_object(key)
    bucket.delete_object(key)  # idempotent
    assert not bucket.object_exists(key)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object(key)
    with pytest.raises(oss2.exceptions.NoSuchKey):  # HEAD errors travel in x-oss-err
        bucket.head_object(key)


def test_range_reads_report_whole_object_crc(bucket: oss2.Bucket) -> None:
    data = bytes(range(256)) * 40
    bucket.put_object("r.bin", data)
    for byte_range, expected in [((10, 19), data[10:20]), ((10000, None), data[10000:]), ((None, 100), data[-100:])]:
        got = bucket.get_object("r.bin", byte_range=byte_range)
        assert got.status == 206
        assert got.read() == expected
        assert got.server_crc == oss2_crc(data)
        assert got.content_range is not None
    assert bucket.get_object("r.bin", byte_range=(0, 10**9)).read() == data  # end clamped
    whole = bucket.get_object("r.bin", byte_range=(len(data) + 5, len(data) + 10))  # unsatisfiable: ignored
    assert (whole.status, whole.read()) == (200, data)
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.get_object("r.bin", byte_range=(len(data) + 5, None), headers={"x-oss-range-behavior": "standard"})
    assert (err.value.status, err.value.code) == (416, "InvalidRange")


def test_get_object_to_file_checks_crc(bucket: oss2.Bucket, tmp_path: Path) -> None:
    data = os.urandom(300 * KIB)
    bucket.put_object("f.bin", data)
    bucket.get_object_to_file("f.bin", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data


def test_empty_object_and_chunked_body(bucket: oss2.Bucket) -> None:
    bucket.put_object("empty", b"")
    assert bucket.get_object("empty").read() == b""
    assert bucket.head_object("empty").content_length == 0
    chunks = [os.urandom(70 * KIB) for _ in range(3)]
    put = bucket.put_object("chunked", iter(chunks))  # unknown size: Transfer-Encoding: chunked
    assert put.crc == oss2_crc(b"".join(chunks))
    assert bucket.get_object("chunked").read() == b"".join(chunks)


def test_content_md5_checked(bucket: oss2.Bucket) -> None:
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    bucket.put_object("md5", b"abc", headers={"Content-MD5": good})
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("md5", b"abd", headers={"Content-MD5": good})
    assert bucket.get_object("md5").read() == b"abc"


def test_copy_and_batch_delete(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    bucket.put_object("src/a b.txt", b"payload", headers={"Content-Type": "text/plain", "x-oss-meta-k": "v"})
    copy = bucket.copy_object(bucket.bucket_name, "src/a b.txt", "dst/copy.txt")
    assert copy.crc == oss2_crc(b"payload")
    got = bucket.get_object("dst/copy.txt")
    assert (got.read(), got.content_type, got.headers["x-oss-meta-k"]) == (b"payload", "text/plain", "v")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(bucket.bucket_name, "nope", "x")
    result = bucket.batch_delete_objects(["src/a b.txt", "dst/copy.txt", "never-existed"])
    assert sorted(result.deleted_keys) == ["dst/copy.txt", "never-existed", "src/a b.txt"]
    assert sandbox.list_keys(bucket.bucket_name) == []


# -- listing ----------------------------------------------------------------------------------------


def test_list_objects_v2_prefix_delimiter_paging(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    keys = ["a.txt", "dir/1", "dir/2", "dir/sub/3", "dir/sub/4", "dir/zz/5", "dir.txt", "e e/6", "z"]
    for key in keys:
        bucket.put_object(key, key.encode())
    assert sandbox.list_keys(bucket.bucket_name) == sorted(keys)

    everything = [o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=2)]
    assert everything == sorted(keys)

    page = bucket.list_objects_v2(prefix="dir/", delimiter="/")
    assert [o.key for o in page.object_list] == ["dir/1", "dir/2"]
    assert page.prefix_list == ["dir/sub/", "dir/zz/"]
    assert not page.is_truncated
    assert page.object_list[0].size == len("dir/1")
    assert page.object_list[0].etag == hashlib.md5(b"dir/1").hexdigest().upper()

    listed = list(oss2.ObjectIteratorV2(bucket, delimiter="/", max_keys=1))  # a prefix spans pages once
    assert [o.key for o in listed] == ["a.txt", "dir.txt", "dir/", "e e/", "z"]
    assert [o.is_prefix() for o in listed] == [False, False, True, True, False]

    after = bucket.list_objects_v2(start_after="dir/sub/4", max_keys=100)
    assert [o.key for o in after.object_list] == ["dir/zz/5", "e e/6", "z"]
    with_owner = bucket.list_objects_v2(prefix="z", fetch_owner=True)
    assert with_owner.object_list[0].owner is not None

    v1 = [o.key for o in oss2.ObjectIterator(bucket, prefix="dir/", max_keys=2)]
    assert v1 == ["dir/1", "dir/2", "dir/sub/3", "dir/sub/4", "dir/zz/5"]


def test_list_rejects_bad_max_keys(bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.list_objects_v2(max_keys=5000)


# -- multipart --------------------------------------------------------------------------------------


def test_multipart_upload_combines_crc_and_bytes(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    parts_data = [os.urandom(100 * KIB), os.urandom(150 * KIB), os.urandom(7 * KIB)]
    key = "big/model.safetensors"
    upload_id = bucket.init_multipart_upload(key).upload_id
    parts = []
    for number, data in enumerate(parts_data, 1):
        result = bucket.upload_part(key, upload_id, number, data)
        assert result.crc == oss2_crc(data)
        parts.append(oss2.models.PartInfo(number, result.etag, size=len(data), part_crc=result.crc))
    listed = bucket.list_parts(key, upload_id, max_parts=2)
    assert [p.part_number for p in listed.parts] == [1, 2] and listed.is_truncated
    assert [p.part_number for p in oss2.PartIterator(bucket, key, upload_id, max_parts=1)] == [1, 2, 3]
    others = [bucket.init_multipart_upload(k).upload_id for k in ("big/other", "big/other", "c/d")]
    paged = [(u.key, u.upload_id) for u in oss2.MultipartUploadIterator(bucket, max_uploads=1)]
    assert sorted(paged) == sorted([(key, upload_id), *zip(("big/other", "big/other", "c/d"), others)])
    assert [k for k, _ in paged] == sorted(k for k, _ in paged)
    grouped = bucket.list_multipart_uploads(delimiter="/")
    assert grouped.prefix_list == ["big/", "c/"] and grouped.upload_list == []
    for other_key, other_id in zip(("big/other", "big/other", "c/d"), others):
        bucket.abort_multipart_upload(other_key, other_id)

    done = bucket.complete_multipart_upload(key, upload_id, parts)  # oss2 checks the combined CRC itself
    whole = b"".join(parts_data)
    assert done.crc == oss2_crc(whole)
    assert done.etag.endswith("-3")
    assert bucket.get_object(key).read() == whole
    assert sandbox.object_bytes(bucket.bucket_name, key) == whole
    assert bucket.get_object(key, byte_range=(100 * KIB - 3, 100 * KIB + 2)).read() == whole[100 * KIB - 3: 100 * KIB + 3]
    info = sandbox.object_info(bucket.bucket_name, key)
    assert (info["size"], info["crc64"], info["object_type"]) == (len(whole), oss2_crc(whole), "Multipart")
    assert sandbox.multipart_uploads(bucket.bucket_name) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts(key, upload_id)


def test_complete_validates_parts(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    key = "v.bin"
    upload_id = bucket.init_multipart_upload(key).upload_id
    small = bucket.upload_part(key, upload_id, 1, b"x" * 10)
    last = bucket.upload_part(key, upload_id, 2, b"y" * 10)
    PartInfo = oss2.models.PartInfo

    def complete(parts: list[oss2.models.PartInfo]) -> str:
        with pytest.raises(oss2.exceptions.ServerError) as err:
            bucket.complete_multipart_upload(key, upload_id, parts)
        return err.value.code

    assert complete([PartInfo(1, small.etag), PartInfo(3, last.etag)]) == "InvalidPart"
    assert complete([PartInfo(1, "0" * 32), PartInfo(2, last.etag)]) == "InvalidPart"
    assert complete([PartInfo(1, small.etag), PartInfo(2, last.etag)]) == "EntityTooSmall"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.upload_part(key, upload_id, 10001, b"z")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part(key, "NOSUCHUPLOAD", 1, b"z")
    bucket.abort_multipart_upload(key, upload_id)
    assert sandbox.multipart_uploads(bucket.bucket_name) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload(key, upload_id)


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_resumable_upload(sandbox: OssSandbox, tmp_path: Path, upload_store: oss2.ResumableStore, v4: bool) -> None:
    bucket = make_bucket(sandbox, v4=v4)
    bucket.create_bucket()
    data = write_file(tmp_path / "model.bin", 450 * KIB + 17)
    oss2.resumable_upload(bucket, "models/model.bin", str(tmp_path / "model.bin"), store=upload_store,
                          multipart_threshold=100 * KIB, part_size=100 * KIB, num_threads=2)
    assert sandbox.object_bytes(bucket.bucket_name, "models/model.bin") == data
    assert sandbox.object_info(bucket.bucket_name, "models/model.bin")["crc64"] == oss2_crc(data)
    assert len(sandbox.requests("UploadPart")) >= 5
    assert sandbox.multipart_uploads(bucket.bucket_name) == []


# -- auth -------------------------------------------------------------------------------------------


def test_v4_signatures(sandbox: OssSandbox) -> None:
    bucket = make_bucket(sandbox, v4=True)
    bucket.create_bucket()
    key = "v4 dir/ü+%.txt"
    bucket.put_object(key, b"v4", headers={"x-oss-meta-a": "1"})
    assert bucket.get_object(key).read() == b"v4"
    assert [o.key for o in bucket.list_objects_v2(prefix="v4 dir/", delimiter="/").object_list] == [key]
    assert bucket.get_bucket_info().location == f"oss-{REGION}"


def test_wrong_secret_is_rejected_without_echoing_it(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    for v4 in (False, True):
        wrong = make_bucket(sandbox, bucket.bucket_name, v4=v4, secret="not-the-secret")
        with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as err:
            wrong.put_object("k", b"x")
        assert err.value.status == 403
        assert err.value.details["OSSAccessKeyId"] == SANDBOX_ACCESS_KEY_ID
        assert "StringToSign" in err.value.details
        assert "not-the-secret" not in str(err.value) and SANDBOX_ACCESS_KEY_SECRET not in str(err.value)
    assert sandbox.list_keys(bucket.bucket_name) == []


def test_unknown_key_and_anonymous(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    stranger = make_bucket(sandbox, bucket.bucket_name, ak="LTAIunknown")
    with pytest.raises(oss2.exceptions.ServerError) as err:
        stranger.get_bucket_info()
    assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), sandbox.url, bucket.bucket_name)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("k")


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_presigned_urls(sandbox: OssSandbox, bucket: oss2.Bucket, v4: bool) -> None:
    bucket.put_object("shared/file.txt", b"shared")
    signer = make_bucket(sandbox, bucket.bucket_name, v4=v4)
    assert requests.get(signer.sign_url("GET", "shared/file.txt", 60)).content == b"shared"
    assert requests.put(signer.sign_url("PUT", "shared/up.txt", 60), data=b"up").status_code == 200
    assert bucket.get_object("shared/up.txt").read() == b"up"
    tampered = signer.sign_url("GET", "shared/file.txt", 60).replace("file.txt", "up.txt")
    assert requests.get(tampered).status_code == 403
    if v4:  # a signed Host header (AdditionalHeaders) is verified too
        host = urlparse(sandbox.url).netloc
        url = signer.sign_url("GET", "shared/file.txt", 60, headers={"Host": host}, additional_headers={"host"})
        assert requests.get(url).content == b"shared"
        assert requests.get(url, headers={"Host": "elsewhere:1"}).status_code == 403


@pytest.mark.parametrize("v2_form", [False, True], ids=["oss2-form", "v2-sdk-form"])
def test_v4_header_with_additional_headers(sandbox: OssSandbox, bucket: oss2.Bucket, v2_form: bool) -> None:
    """oss2 signs AdditionalHeaders when asked; alibabacloud-oss-v2 writes the same fields joined by
    a bare comma, in another order. Both must verify."""
    bucket.put_object("h.txt", b"hi")
    url = f"{sandbox.url}/{bucket.bucket_name}/h.txt"
    request = oss2.http.Request("GET", url, headers={"Host": urlparse(sandbox.url).netloc}, region=REGION, product="oss")
    oss2.AuthV4(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)._sign_request(
        request, bucket.bucket_name, "h.txt", in_additional_headers={"host"})
    authorization = request.headers["authorization"]
    assert "AdditionalHeaders=host" in authorization
    if v2_form:
        fields = dict(f.split("=", 1) for f in authorization.split(" ", 1)[1].split(", "))
        authorization = (f"OSS4-HMAC-SHA256 Credential={fields['Credential']},AdditionalHeaders=host,"
                         f"Signature={fields['Signature']}")
    headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    assert requests.get(url, headers={**headers, "Authorization": authorization}).content == b"hi"


# -- faults -----------------------------------------------------------------------------------------


def test_dropped_upload_part_surfaces_and_retry_succeeds(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    key = "dropped.bin"
    data = [os.urandom(120 * KIB), os.urandom(30 * KIB)]
    upload_id = bucket.init_multipart_upload(key).upload_id
    first = bucket.upload_part(key, upload_id, 1, data[0])
    sandbox.faults.add(kind="drop", action="UploadPart", times=1)
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.upload_part(key, upload_id, 2, data[1])
    second = bucket.upload_part(key, upload_id, 2, data[1])
    assert [r.fault for r in sandbox.requests("UploadPart")][-2:] == ["drop", None]
    bucket.complete_multipart_upload(key, upload_id, [
        oss2.models.PartInfo(1, first.etag, size=len(data[0]), part_crc=first.crc),
        oss2.models.PartInfo(2, second.etag, size=len(data[1]), part_crc=second.crc),
    ])
    assert bucket.get_object(key).read() == b"".join(data)


def test_cut_body_leaves_nothing_behind(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    sandbox.faults.add(kind="drop_body", action="PutObject", times=1)
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.put_object("cut.bin", os.urandom(2 * 1024 * KIB))
    assert sandbox.list_keys(bucket.bucket_name) == []
    bucket.put_object("cut.bin", b"whole")
    assert bucket.get_object("cut.bin").read() == b"whole"


def test_client_vanishing_mid_body_leaves_no_temp_file(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    def body() -> Iterator[bytes]:
        yield os.urandom(3 * 1024 * KIB)
        raise ConnectionAbortedError("client gives up")

    with pytest.raises((requests.RequestException, ConnectionAbortedError)):
        requests.put(bucket.sign_url("PUT", "gone.bin", 60), data=body())
    tmp = Path(sandbox.state_dir or "") / "oss" / bucket.bucket_name / "tmp"
    deadline = time.monotonic() + 30
    while any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(tmp.iterdir())
    assert sandbox.list_keys(bucket.bucket_name) == []


def test_injected_503_and_throttling(sandbox: OssSandbox, bucket: oss2.Bucket) -> None:
    sandbox.faults.add(kind="status", status=503, code="ServiceUnavailable", action="PutObject", times=1)
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.put_object("k", b"x")
    assert (err.value.status, err.value.code) == (503, "ServiceUnavailable")
    assert err.value.request_id
    sandbox.faults.add(kind="throttle", action="GetObject", times=1)
    bucket.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.get_object("k")
    assert (err.value.status, err.value.code) == (503, "SlowDown")
    assert bucket.get_object("k").read() == b"x"
    assert [r.status for r in sandbox.requests("PutObject")][-2:] == [503, 200]


# -- state ------------------------------------------------------------------------------------------


def test_state_survives_restart(tmp_path: Path) -> None:
    with OssSandbox(state_dir=tmp_path, fidelity=Fidelity(signature_v1="accepted")) as first:
        bucket = make_bucket(first, "kept")
        bucket.create_bucket()
        bucket.put_object("a/b.txt", b"kept")
        pending = bucket.init_multipart_upload("half.bin").upload_id
        bucket.upload_part("half.bin", pending, 1, os.urandom(100 * KIB))
    with OssSandbox(state_dir=tmp_path, fidelity=Fidelity(signature_v1="accepted")) as second:
        bucket = make_bucket(second, "kept")
        assert bucket.get_object("a/b.txt").read() == b"kept"
        assert second.multipart_uploads("kept")[0]["parts"] == [1]
        assert [p.part_number for p in bucket.list_parts("half.bin", pending).parts] == [1]
        last = bucket.upload_part("half.bin", pending, 2, b"end")
        first_part = bucket.list_parts("half.bin", pending).parts[0]
        bucket.complete_multipart_upload("half.bin", pending, [first_part, oss2.models.PartInfo(2, last.etag)])
        assert bucket.head_object("half.bin").content_length == 100 * KIB + 3
    assert (tmp_path / "oss" / "kept" / "bucket.json").is_file()


def test_temp_state_is_removed_on_stop() -> None:
    oss = OssSandbox().start()
    state = oss.state_dir
    assert state is not None and state.is_dir()
    oss.stop()
    assert not state.exists()


def test_reader_sees_one_version_across_overwrite(tmp_path: Path) -> None:
    store = OssStore(tmp_path)
    store.create_bucket("b", REGION)

    def put(data: bytes) -> None:
        writer = store.body_writer("b")
        store.put_object("b", "k", writer.finish(data), "application/octet-stream", {})

    put(b"old")
    reader = store.open("b", "k")
    assert reader is not None
    put(b"new")
    store.delete_object("b", "k")
    assert reader.read() == b"old"  # retired content stays until the reader closes
    reader.close()
    assert [p.name for p in (tmp_path / "b" / "objects").iterdir()] == []


def test_each_region_has_its_endpoint_and_buckets_live_where_created(tmp_path: Path) -> None:
    """A bucket created through the cn-shanghai endpoint lives in cn-shanghai; through the
    cn-hangzhou endpoint it answers the wrong-endpoint AccessDenied naming cn-shanghai's."""
    auth = oss2.AuthV4(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)  # V1 is refused, as by new buckets
    with OssSandbox(tmp_path, region=REGION, regions=["cn-shanghai"]) as oss:
        shanghai = oss2.Bucket(auth, oss.url_for("cn-shanghai"), "sh-bucket", region="cn-shanghai")
        shanghai.create_bucket()
        shanghai.put_object("k", b"v")
        assert shanghai.get_bucket_location().location == "oss-cn-shanghai"
        assert shanghai.get_object("k").read() == b"v"
        from_hangzhou = oss2.Bucket(auth, oss.url, "sh-bucket", region=REGION)
        with pytest.raises(oss2.exceptions.AccessDenied) as info:
            from_hangzhou.get_object("k")
        assert info.value.details["Endpoint"] == "oss-cn-shanghai.aliyuncs.com"
        assert oss.requests("GetObject")[-1].site == REGION
        [listed] = [b for b in oss2.Service(auth, oss.url, region=REGION).list_buckets().buckets if b.name == "sh-bucket"]
        assert listed.location == "oss-cn-shanghai" and listed.extranet_endpoint == oss.endpoint_for("cn-shanghai")
        assert oss.store.bucket("sh-bucket").region == "cn-shanghai"
    with OssSandbox(tmp_path, region=REGION, regions=["cn-shanghai"]) as again:  # kept across a restart
        assert oss2.Bucket(auth, again.url_for("cn-shanghai"), "sh-bucket", region="cn-shanghai").get_object("k").read() == b"v"
