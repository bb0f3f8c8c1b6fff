"""On-disk store behind the OSS sandbox: buckets, objects and multipart uploads.

Layout under ``root`` (``<state_dir>/oss``)::

    <bucket>/bucket.json                        name, region, creation time, ACL, storage class
    <bucket>/objects/<key-id>.json              object sidecar: key, size, crc64, etag, times, metadata,
                                                content file stem and segment sizes
    <bucket>/objects/<key-id>.<version>.<i>     content segment i (one for PutObject/CopyObject, one per
                                                part for a completed multipart upload); a new version
                                                name on every write
    <bucket>/uploads/<upload-id>/upload.json    multipart upload: key, initiated, content type, metadata
    <bucket>/uploads/<upload-id>/<nnnnn>.part   one uploaded part, with <nnnnn>.json (size, crc64, etag)
    <bucket>/tmp/                               request bodies being received (emptied on load)

``<key-id>`` is the SHA-256 of the UTF-8 key, so any key (slashes, ``..``, 1023 bytes) maps to one
flat file name. Completing a multipart upload renames the part files into place as the object's
segments and combines the part CRCs, so it costs no data copy however big the object is; readers
see the segments as one stream.

Everything is indexed in memory and rebuilt from the sidecars on load, so state survives a restart.
Thread safety: the index and sidecar writes are guarded by one lock. Bulk data work (receiving a
body, copying, reading) happens outside the lock on the caller's thread; callers on an event loop
run those methods in an executor. Content of an overwritten or deleted object stays on disk until
its last open ``ObjectReader`` is closed, so a read always sees one consistent version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ... import crc64 as crc

READ_CHUNK = 1 << 20


@dataclass
class BucketRecord:
    name: str
    region: str
    created: float
    acl: str = "private"
    storage_class: str = "Standard"


@dataclass
class ObjectMeta:
    key: str
    size: int
    crc64: int
    etag: str  # upper-case hex without quotes; "<hex>-<parts>" for a completed multipart upload
    last_modified: float
    content_type: str
    object_type: str = "Normal"  # "Multipart" after CompleteMultipartUpload
    content_md5: str = ""  # base64 MD5, known for single-request writes only
    user_meta: dict[str, str] = field(default_factory=dict)  # lower-case "x-oss-meta-*" -> value
    data: str = ""  # stem of the content files in the bucket's objects dir
    segments: list[int] = field(default_factory=list)  # sizes of the content files <data>.0, <data>.1, ...


@dataclass
class PartMeta:
    number: int
    size: int
    crc64: int
    etag: str  # upper-case MD5 hex of the part
    last_modified: float


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    user_meta: dict[str, str] = field(default_factory=dict)
    parts: dict[int, PartMeta] = field(default_factory=dict)  # persisted as part sidecars

    def header(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("parts")
        return data


@dataclass(frozen=True)
class ReceivedBody:
    """A request body that landed in a temp file, with what was computed while it streamed in."""

    path: Path
    size: int
    crc64: int
    md5: bytes

    @property
    def etag(self) -> str:
        return self.md5.hex().upper()


class BodyWriter:
    """Write one request body to a temp file, computing CRC64 and MD5 chunk by chunk.

    Used from one thread at a time (the caller serialises ``write``/``finish``/``discard``). MD5
    runs on a helper thread while this one writes and computes the CRC: hashlib releases the GIL
    and crcmod does not, so the two overlap and a chunk costs about the CRC alone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")
        self._md5 = hashlib.md5()
        self._md5_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oss-md5")
        self._crc = 0
        self._size = 0

    def write(self, chunk: bytes) -> None:
        md5_done = self._md5_thread.submit(self._md5.update, chunk)
        self._file.write(chunk)
        self._crc = crc.crc64(chunk, self._crc)
        self._size += len(chunk)
        md5_done.result()

    def finish(self, last_chunk: bytes = b"") -> ReceivedBody:
        if last_chunk:
            self.write(last_chunk)
        self._close()
        return ReceivedBody(self.path, self._size, self._crc, self._md5.digest())

    def discard(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        self._md5_thread.shutdown(wait=False)
        self._file.close()


class ObjectReader:
    """One version of an object's content, readable as a single byte stream across its segments.

    Close it (or use ``with``) so content retired by an overwrite or delete can be removed.
    """

    def __init__(self, meta: ObjectMeta, paths: list[Path], on_close: Callable[[], None]) -> None:
        self.meta = meta
        self._paths = paths
        self._on_close: Callable[[], None] | None = on_close

    def chunks(self, first: int = 0, length: int | None = None, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Yield the bytes ``first .. first+length-1`` (blocking reads of up to ``chunk_size``)."""
        end = self.meta.size if length is None else first + length
        position, segment_start = first, 0
        for path, segment_size in zip(self._paths, self.meta.segments):
            segment_end = segment_start + segment_size
            stop = min(segment_end, end)
            if position < stop:
                with open(path, "rb") as file:
                    file.seek(position - segment_start)
                    while position < stop:
                        data = file.read(min(chunk_size, stop - position))
                        if not data:
                            raise OSError(f"object content is shorter than recorded: {path.name}")
                        position += len(data)
                        yield data
            segment_start = segment_end

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def files(self) -> list[tuple[Path, int]]:
        """The content files and their sizes, in order."""
        return list(zip(self._paths, self.meta.segments))

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> "ObjectReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def multipart_etag(parts: list[PartMeta]) -> str:
    """S3-style: MD5 of the concatenated binary part MD5s, then ``-<part count>``."""
    digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts)).hexdigest().upper()
    return f"{digest}-{len(parts)}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class OssStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._buckets: dict[str, BucketRecord] = {}
        self._objects: dict[str, dict[str, ObjectMeta]] = {}
        self._uploads: dict[str, dict[str, Upload]] = {}
        self._readers: Counter[Path] = Counter()  # open readers per content stem
        self._retired: set[Path] = set()  # stems to delete once their last reader closes
        root.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- paths ---------------------------------------------------------------------------------
    def _dir(self, bucket: str, *parts: str) -> Path:
        return self.root.joinpath(bucket, *parts)

    def _upload_dir(self, upload: Upload) -> Path:
        return self._dir(upload.bucket, "uploads", upload.upload_id)

    def _stem(self, bucket: str, meta: ObjectMeta) -> Path:
        return self._dir(bucket, "objects", meta.data)

    @staticmethod
    def _segment_paths(stem: Path, count: int) -> list[Path]:
        return [stem.with_name(f"{stem.name}.{i}") for i in range(count)]

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        for bucket_dir in sorted(self.root.iterdir()):
            record = _read_json(bucket_dir / "bucket.json")
            if record is None:
                continue
            bucket = BucketRecord(**record)
            self._buckets[bucket.name] = bucket
            for sub in ("objects", "uploads"):
                (bucket_dir / sub).mkdir(exist_ok=True)
            shutil.rmtree(bucket_dir / "tmp", ignore_errors=True)
            (bucket_dir / "tmp").mkdir()
            self._objects[bucket.name] = self._load_objects(bucket_dir / "objects")
            self._uploads[bucket.name] = self._load_uploads(bucket_dir / "uploads")

    def _load_objects(self, objects_dir: Path) -> dict[str, ObjectMeta]:
        index: dict[str, ObjectMeta] = {}
        referenced: set[str] = set()
        for sidecar in objects_dir.glob("*.json"):
            data = _read_json(sidecar)
            if data is None:
                continue
            meta = ObjectMeta(**data)
            paths = self._segment_paths(objects_dir / meta.data, len(meta.segments))
            if all(p.is_file() for p in paths):
                index[meta.key] = meta
                referenced.update(p.name for p in paths)
        for path in objects_dir.iterdir():  # content left behind by an interrupted write or a reader
            if path.suffix != ".json" and path.name not in referenced:
                path.unlink(missing_ok=True)
        return index

    @staticmethod
    def _load_uploads(uploads_dir: Path) -> dict[str, Upload]:
        uploads: dict[str, Upload] = {}
        for upload_dir in uploads_dir.iterdir():
            data = _read_json(upload_dir / "upload.json")
            if data is None:
                continue
            upload = Upload(**data)
            for sidecar in sorted(upload_dir.glob("[0-9]*.json")):
                part = _read_json(sidecar)
                if part is not None and sidecar.with_suffix(".part").is_file():
                    upload.parts[int(part["number"])] = PartMeta(**part)
            uploads[upload.upload_id] = upload
        return uploads

    # -- buckets -------------------------------------------------------------------------------
    def create_bucket(self, name: str, region: str, acl: str = "private", storage_class: str = "Standard") -> bool:
        """Create the bucket; False if it already existed (then it is left as it was)."""
        with self._lock:
            if name in self._buckets:
                return False
            for sub in ("objects", "uploads", "tmp"):
                self._dir(name, sub).mkdir(parents=True, exist_ok=True)
            record = BucketRecord(name, region, time.time(), acl, storage_class)
            _write_json(self._dir(name, "bucket.json"), asdict(record))
            self._buckets[name] = record
            self._objects[name] = {}
            self._uploads[name] = {}
            return True

    def bucket(self, name: str) -> BucketRecord | None:
        with self._lock:
            return self._buckets.get(name)

    def buckets(self) -> list[BucketRecord]:
        with self._lock:
            return sorted(self._buckets.values(), key=lambda b: b.name)

    def is_empty(self, bucket: str) -> bool:
        with self._lock:
            return not self._objects[bucket] and not self._uploads[bucket]

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.pop(name, None)
            self._objects.pop(name, None)
            self._uploads.pop(name, None)
            shutil.rmtree(self._dir(name), ignore_errors=True)

    # -- objects -------------------------------------------------------------------------------
    def body_writer(self, bucket: str) -> BodyWriter:
        return BodyWriter(self._dir(bucket, "tmp", secrets.token_hex(8)))

    def head(self, bucket: str, key: str) -> ObjectMeta | None:
        with self._lock:
            return self._objects.get(bucket, {}).get(key)

    def objects(self, bucket: str) -> list[ObjectMeta]:
        """All objects, in key order (code point order, which is UTF-8 byte order)."""
        with self._lock:
            index = self._objects.get(bucket, {})
            return [index[k] for k in sorted(index)]

    def open(self, bucket: str, key: str) -> ObjectReader | None:
        with self._lock:
            meta = self.head(bucket, key)
            if meta is None:
                return None
            stem = self._stem(bucket, meta)
            self._readers[stem] += 1
            return ObjectReader(meta, self._segment_paths(stem, len(meta.segments)), lambda: self._release(stem))

    def _release(self, stem: Path) -> None:
        with self._lock:
            self._readers[stem] -= 1
            if self._readers[stem] <= 0:
                del self._readers[stem]
                if stem in self._retired:
                    self._retired.discard(stem)
                    self._remove_content(stem)

    def _retire(self, bucket: str, meta: ObjectMeta) -> None:
        """Remove a replaced or deleted version's content now, or when its last reader closes."""
        stem = self._stem(bucket, meta)
        if self._readers[stem] > 0:
            self._retired.add(stem)
        else:
            self._readers.pop(stem, None)
            self._remove_content(stem)

    @staticmethod
    def _remove_content(stem: Path) -> None:
        for path in stem.parent.glob(stem.name + ".*"):
            path.unlink(missing_ok=True)

    def put_object(self, bucket: str, key: str, body: ReceivedBody, content_type: str,
                   user_meta: dict[str, str]) -> ObjectMeta:
        meta = ObjectMeta(key, body.size, body.crc64, body.etag, time.time(), content_type,
                          content_md5=_b64(body.md5), user_meta=user_meta)
        return self._commit(bucket, meta, [(body.path, body.size)])

    def copy_object(self, source: ObjectReader, bucket: str, key: str, content_type: str,
                    user_meta: dict[str, str]) -> ObjectMeta:
        """Copy an open object's content (blocking); the copy keeps its size, CRC and ETag."""
        copies = []
        for path, size in source.files():
            tmp = self._dir(bucket, "tmp", secrets.token_hex(8))
            shutil.copyfile(path, tmp)
            copies.append((tmp, size))
        src = source.meta
        meta = ObjectMeta(key, src.size, src.crc64, src.etag, time.time(), content_type,
                          content_md5=src.content_md5, user_meta=user_meta)
        return self._commit(bucket, meta, copies)

    def delete_object(self, bucket: str, key: str) -> bool:
        with self._lock:
            meta = self._objects.get(bucket, {}).pop(key, None)
            if meta is None:
                return False
            self._dir(bucket, "objects", key_id(key) + ".json").unlink(missing_ok=True)
            self._retire(bucket, meta)
            return True

    def _commit(self, bucket: str, meta: ObjectMeta, contents: list[tuple[Path, int]]) -> ObjectMeta:
        """Rename ``contents`` in as the object's new version; replace its sidecar and index entry."""
        name = key_id(meta.key)
        meta.data = f"{name}.{secrets.token_hex(6)}"
        meta.segments = [size for _, size in contents]
        with self._lock:
            for (path, _), target in zip(contents, self._segment_paths(self._stem(bucket, meta), len(contents))):
                os.replace(path, target)
            _write_json(self._dir(bucket, "objects", name + ".json"), asdict(meta))
            old = self._objects[bucket].get(meta.key)
            self._objects[bucket][meta.key] = meta
            if old is not None:
                self._retire(bucket, old)
        return meta

    # -- multipart -----------------------------------------------------------------------------
    def initiate(self, bucket: str, key: str, content_type: str, user_meta: dict[str, str]) -> Upload:
        upload = Upload(secrets.token_hex(16).upper(), bucket, key, time.time(), content_type, user_meta)
        self._upload_dir(upload).mkdir(parents=True)
        _write_json(self._upload_dir(upload) / "upload.json", upload.header())
        with self._lock:
            self._uploads[bucket][upload.upload_id] = upload
        return upload

    def upload(self, bucket: str, upload_id: str) -> Upload | None:
        with self._lock:
            return self._uploads.get(bucket, {}).get(upload_id)

    def uploads(self, bucket: str) -> list[Upload]:
        """In-progress uploads ordered by key, then upload id (what upload-id-marker pages by)."""
        with self._lock:
            return sorted(self._uploads.get(bucket, {}).values(), key=lambda u: (u.key, u.upload_id))

    def put_part(self, upload: Upload, number: int, body: ReceivedBody) -> PartMeta:
        """Store (or replace) a part. Raises KeyError if the upload was completed or aborted meanwhile."""
        part = PartMeta(number, body.size, body.crc64, body.etag, time.time())
        base = self._upload_dir(upload) / f"{number:05d}"
        with self._lock:
            if self.upload(upload.bucket, upload.upload_id) is None:
                body.path.unlink(missing_ok=True)
                raise KeyError(upload.upload_id)
            os.replace(body.path, base.with_suffix(".part"))
            _write_json(base.with_suffix(".json"), asdict(part))
            upload.parts[number] = part
        return part

    def complete(self, upload: Upload, numbers: list[int]) -> ObjectMeta:
        """Make the listed parts (validated by the caller) the object's segments; drop the rest.

        The object CRC is combined from the part CRCs, so no byte is read again. Raises KeyError
        if the upload was completed or aborted meanwhile.
        """
        with self._lock:  # claim the upload first, so a concurrent complete or abort finds it gone
            if self._uploads[upload.bucket].pop(upload.upload_id, None) is None:
                raise KeyError(upload.upload_id)
        parts = [upload.parts[n] for n in numbers]
        object_crc = parts[0].crc64
        for part in parts[1:]:
            object_crc = crc.combine(object_crc, part.crc64, part.size)
        meta = ObjectMeta(upload.key, sum(p.size for p in parts), object_crc, multipart_etag(parts), time.time(),
                          upload.content_type, object_type="Multipart", user_meta=upload.user_meta)
        upload_dir = self._upload_dir(upload)
        meta = self._commit(upload.bucket, meta, [(upload_dir / f"{p.number:05d}.part", p.size) for p in parts])
        shutil.rmtree(upload_dir, ignore_errors=True)
        return meta

    def abort(self, upload: Upload) -> None:
        with self._lock:
            self._uploads[upload.bucket].pop(upload.upload_id, None)
            shutil.rmtree(self._upload_dir(upload), ignore_errors=True)
