"""The upload engine: resumable parallel uploads to OSS with end-to-end CRC64.

- Large files go up as multipart uploads with at most ``workers`` parts in flight, so memory is
  bounded by ``workers * part_size`` whatever the file size.
- An interrupted upload (Ctrl-C, kill -9, a dropped network) leaves a checkpoint with the upload
  id; the next run asks OSS which parts it has (ListParts) and sends only the rest.
- Every part's CRC64 is computed while it is read and compared with OSS's answer; the object's
  CRC64 is combined from the parts and compared with the completed object's: a mismatch is an
  error, never a silent success.
- Unchanged files are skipped without being read again: a small cache maps (path, size, mtime) to
  the file's CRC64 and the ETag OSS gave it. One listing of the target folder (not one request a
  file) then tells which files are already there, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..crc64 import combine, crc64
from ..errors import CloudError, EascomfyError, UsageError
from ..local.files import state_dir, write_atomic
from ..ports import Bucket
from ..retry import Retry

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_WORKERS = 4
UPLOAD_RETRY = Retry(attempts=4, base=0.2)


# -- the local cache -----------------------------------------------------------------------------
class CrcCache:
    """(absolute path, size, mtime_ns) -> (CRC64, remote ETag), persisted as one small JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "crc-cache.json"
        self._lock = threading.Lock()
        try:
            self._data: dict[str, list[Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False

    def get(self, file: Path, st: os.stat_result) -> tuple[int, str] | None:
        entry = self._data.get(str(file.resolve()))
        if entry and len(entry) == 4 and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2], entry[3]
        return None

    def put(self, file: Path, st: os.stat_result, crc: int, etag: str) -> None:
        with self._lock:
            self._data[str(file.resolve())] = [st.st_size, st.st_mtime_ns, crc, etag]
            self._dirty = True

    def save(self) -> None:
        with self._lock:
            if self._dirty:
                write_atomic(self.path, json.dumps(self._data))
                self._dirty = False


@dataclass
class PushResult:
    file: str
    key: str
    size: int
    crc64: int
    skipped: bool = False
    parts: int = 0
    resumed_parts: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_crc64(path: Path, chunk: int = 8 * MiB) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = crc64(block, crc)
    return crc


@dataclass
class Listing:
    """What one listing of a folder said: key -> (size, etag). Absent keys are known absent."""

    prefix: str
    objects: dict[str, tuple[int, str]] = field(default_factory=dict)


class Uploader:
    def __init__(
        self,
        bucket: Bucket,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        workers: int = DEFAULT_WORKERS,
        cache: CrcCache | None = None,
        progress: Callable[[int], None] | None = None,
        on_file: Callable[[Path, int], None] | None = None,
    ) -> None:
        if part_size < 100 * 1024:
            raise UsageError("must be at least 100 KiB (an OSS limit)", param="part_size")
        if workers < 1:
            raise UsageError("must be at least 1", param="workers")
        self.bucket = bucket
        self.part_size = part_size
        self.workers = workers
        self.cache = cache or CrcCache()
        self.progress = progress or (lambda n: None)
        self.on_file = on_file or (lambda file, size: None)

    def push_many(self, pairs: Iterable[tuple[Path, str]]) -> list[PushResult]:
        """Upload (file, key) pairs; each target folder is listed once to find unchanged files."""
        pairs = list(pairs)
        listings: dict[str, Listing] = {}
        for _, key in pairs:
            folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            if folder not in listings:
                listing = Listing(folder)
                for k, size, is_dir, etag in self.bucket.list(folder, "/"):
                    if not is_dir:
                        listing.objects[k] = (size, etag)
                listings[folder] = listing
        results = []
        try:
            for file, key in pairs:
                folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
                results.append(self.push(file, key, listings[folder]))
        finally:
            self.cache.save()
        return results

    def push(self, file: Path, key: str, listing: Listing | None = None) -> PushResult:
        start = time.monotonic()
        st = file.stat()
        self.on_file(file, st.st_size)
        known = self.cache.get(file, st)
        if listing is not None:
            listed = listing.objects.get(key)
            if listed and known and listed == (st.st_size, known[1]):
                self.progress(st.st_size)
                return PushResult(str(file), key, st.st_size, known[0], skipped=True)
            remote = self.bucket.head(key) if listed and listed[0] == st.st_size else None
        else:
            remote = self.bucket.head(key)
        if remote is not None and remote.size == st.st_size and remote.crc64 is not None:
            local = known[0] if known is not None else file_crc64(file)
            if local == remote.crc64:
                self.cache.put(file, st, local, remote.etag)
                self.progress(st.st_size)
                return PushResult(str(file), key, st.st_size, local, skipped=True)
        if st.st_size <= self.part_size:
            result, etag = self._put_small(file, key)
        else:
            result, etag = self._put_multipart(file, key, st)
        self.cache.put(file, st, result.crc64, etag)
        result.seconds = time.monotonic() - start
        return result

    def _put_small(self, file: Path, key: str) -> tuple[PushResult, str]:
        data = file.read_bytes()
        local = crc64(data)
        remote, etag = _retrying(lambda: self.bucket.put(key, data))
        _verify(key, local, remote)
        self.progress(len(data))
        return PushResult(str(file), key, len(data), local, parts=1), etag

    # -- multipart with resume ------------------------------------------------------------
    def _checkpoint_path(self, file: Path, key: str, st: os.stat_result) -> Path:
        ident = f"{self.bucket.name}\0{key}\0{file.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{self.part_size}"
        return state_dir() / "uploads" / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")

    def _resume(self, checkpoint: Path, key: str) -> tuple[str | None, dict[int, dict[str, Any]]]:
        """The upload id and parts a checkpoint names, keeping only parts OSS still has."""
        try:
            saved = json.loads(checkpoint.read_text())
            upload_id, parts = saved["upload_id"], saved["parts"]
        except (OSError, ValueError, KeyError):
            return None, {}
        listed = self.bucket.list_parts(key, upload_id)
        if listed is None:
            return None, {}
        done = {int(n): p for n, p in parts.items() if int(n) in listed and listed[int(n)][0] == p["etag"]}
        return upload_id, done

    def _put_multipart(self, file: Path, key: str, st: os.stat_result) -> tuple[PushResult, str]:
        size = st.st_size
        count = (size + self.part_size - 1) // self.part_size
        checkpoint = self._checkpoint_path(file, key, st)
        upload_id, done = self._resume(checkpoint, key)
        if upload_id is None:
            upload_id = _retrying(lambda: self.bucket.init_multipart(key))
        resumed = len(done)
        lock = threading.Lock()

        def save() -> None:
            write_atomic(checkpoint, json.dumps({"upload_id": upload_id, "key": key, "parts": done}))

        save()
        self.progress(sum(p["size"] for p in done.values()))

        def send(n: int) -> None:
            offset = (n - 1) * self.part_size
            length = min(self.part_size, size - offset)
            with open(file, "rb") as fh:
                data = os.pread(fh.fileno(), length, offset)
            if len(data) != length:
                raise EascomfyError(f"{file} changed while it was uploaded", "push it again")
            local = crc64(data)
            etag, remote = _retrying(lambda: self.bucket.upload_part(key, upload_id, n, data))
            _verify(f"{key} part {n}", local, remote)
            with lock:
                done[n] = {"etag": etag, "crc64": local, "size": length}
                save()
            self.progress(length)

        _bounded_parallel(send, [n for n in range(1, count + 1) if n not in done], self.workers)
        whole = done[1]["crc64"]
        for n in range(2, count + 1):
            whole = combine(whole, done[n]["crc64"], done[n]["size"])
        remote, etag = _retrying(
            lambda: self.bucket.complete_multipart(key, upload_id, [(n, done[n]["etag"]) for n in range(1, count + 1)])
        )
        _verify(key, whole, remote)
        checkpoint.unlink(missing_ok=True)
        return PushResult(str(file), key, size, whole, parts=count, resumed_parts=resumed), etag


def _bounded_parallel(fn: Callable[[int], None], items: list[int], workers: int) -> None:
    """Run ``fn`` over ``items`` with at most ``workers`` in flight; the first error stops it."""
    with ThreadPoolExecutor(workers, thread_name_prefix="eascomfy-upload") as pool:
        running: set[Future[None]] = set()
        try:
            for item in items:
                running.add(pool.submit(fn, item))
                if len(running) >= workers:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()
            for f in running:
                f.result()
        except BaseException:
            for f in running:
                f.cancel()
            raise


def _transient(exc: Exception) -> bool:
    """5xx, throttling and connection errors: worth sending the same bytes again."""
    return isinstance(exc, CloudError) and (
        exc.code == "ConnectionError" or (exc.status or 0) >= 500 or (exc.code or "").startswith("Throttl")
    )


def _retrying(call: Callable[[], Any]) -> Any:
    """A call that is safe to repeat (a part or whole-object upload of the same bytes), retried on
    transient failures with the shared backoff."""
    return UPLOAD_RETRY.call(call, _transient)


def _verify(what: str, local: int, remote: int | None) -> None:
    if remote is None:
        raise CloudError(f"{what}: OSS did not return a CRC64; cannot verify the upload", code="NoCrc64")
    if remote != local:
        raise CloudError(
            f"{what}: CRC64 mismatch (local {local}, OSS {remote}); the stored data is not what was sent",
            code="CrcMismatch",
            hint="push again; the object was not accepted as correct",
        )
