"""The upload engine: resumable parallel uploads to OSS with end-to-end CRC64.

- Large files go up as multipart uploads with at most ``workers`` parts in flight, so memory is
  bounded by ``workers * part_size`` whatever the file size.
- An interrupted upload (Ctrl-C, kill -9, a dropped network) leaves a checkpoint with the upload
  id; the next run asks OSS which parts it has (ListParts) and sends only the rest.
- Every part's CRC64 is computed while it is read and compared with OSS's answer; the object's
  CRC64 is combined from the parts and compared with the completed object's: a mismatch is an
  error, never a silent success. A part or small object whose CRC64 OSS reports wrong is sent
  again (its bytes are still here, and a resend replaces what OSS stored) up to ``CRC_ATTEMPTS``
  times; when that does not help, or the completed object is wrong, nothing is left behind: the
  multipart upload is aborted, a wrong object deleted, the checkpoint removed.
- A checkpoint goes as soon as its object is complete: Ctrl-C while OSS answers the completion
  waits for that answer (a second Ctrl-C does not), and a checkpoint found for an object already
  there, or for an upload OSS no longer has, is removed.
- The parts come from a ``Source``: a local file (``LocalSource``) or a remote file read by ranged
  GETs (``storage.pull_source``); ``OrderedDigest`` hashes the parts in order as they pass, so a
  source's published SHA-256 is checked before the upload is completed.
- Unchanged files are skipped without being read again: a small cache maps (path, size, mtime) to
  the file's CRC64 and the ETag OSS gave it. One listing of the target folder (not one request a
  file) then tells which files are already there, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Protocol

from ..crc64 import combine, crc64
from ..errors import CloudError, EascomfyError, UsageError
from ..local.files import regular_file, state_dir, write_atomic
from ..ports import Bucket
from ..retry import Retry
from .resumable_hash import ResumableSha256

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_WORKERS = 4
UPLOAD_RETRY = Retry(attempts=4, base=0.2)
CRC_ATTEMPTS = 3  # sends of one part or small object that OSS stored (or reported) wrong
CRC_MISMATCH = "CrcMismatch"
HASH_MISMATCH = "HashMismatch"  # the source's published hash (e.g. SHA-256) disagrees with its bytes


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
        warn: Callable[[str], None] | None = None,
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
        self.warn = warn or (lambda message: None)

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
        st = regular_file(file)  # never read a device or a FIFO
        self.on_file(file, st.st_size)
        known = self.cache.get(file, st)
        if listing is not None:
            listed = listing.objects.get(key)
            if listed and known and listed == (st.st_size, known[1]):
                self._checkpoint_path(LocalSource(file, st), key).unlink(missing_ok=True)  # one an interruption left
                self.progress(st.st_size)
                return PushResult(str(file), key, st.st_size, known[0], skipped=True)
            remote = self.bucket.head(key) if listed and listed[0] == st.st_size else None
        else:
            remote = self.bucket.head(key)
        if remote is not None and remote.size == st.st_size and remote.crc64 is not None:
            local = known[0] if known is not None else file_crc64(file)
            if local == remote.crc64:
                self.cache.put(file, st, local, remote.etag)
                self._checkpoint_path(LocalSource(file, st), key).unlink(missing_ok=True)  # one an interruption left
                self.progress(st.st_size)
                return PushResult(str(file), key, st.st_size, local, skipped=True)
        if st.st_size <= self.part_size:
            result, etag = self._put_small(file, key)
        else:
            result, etag = self._put_multipart(LocalSource(file, st), key)
        self.cache.put(file, st, result.crc64, etag)
        result.seconds = time.monotonic() - start
        return result

    def _put_small(self, file: Path, key: str) -> tuple[PushResult, str]:
        data = file.read_bytes()
        local = crc64(data)
        try:
            etag = self._verified(key, local, lambda: self.bucket.put(key, data))
        except CloudError as exc:
            if exc.code == CRC_MISMATCH:  # what OSS holds under the key is not the file: remove it
                _best_effort(lambda: self.bucket.delete(key))
            raise
        self.progress(len(data))
        return PushResult(str(file), key, len(data), local, parts=1), etag

    def _verified(self, what: str, local: int, send: Callable[[], tuple[int | None, str]]) -> str:
        """``send()`` (retried on transient failures) until the CRC64 OSS answers matches ``local``,
        at most ``CRC_ATTEMPTS`` sends; ``send`` returns (OSS's CRC64, ETag). The ETag."""
        for attempt in range(1, CRC_ATTEMPTS + 1):
            remote, etag = _retrying(send)
            try:
                _verify(what, local, remote)
                return etag
            except CloudError as exc:
                if exc.code != CRC_MISMATCH or attempt == CRC_ATTEMPTS:
                    raise
                self.warn(f"{what}: CRC64 mismatch (local {local}, OSS {remote}); sending it again")
        raise AssertionError("unreachable")

    # -- any source: a local file or a remote one ------------------------------------------------
    def push_source(self, source: "Source", key: str, digest: "OrderedDigest | None" = None) -> PushResult:
        """Upload ``source`` as a multipart upload (resumable, CRC64-verified part by part and
        whole); with ``digest``, every part also goes through it in order, and ``digest.check()``
        runs before the upload is completed: when it raises, nothing is left behind."""
        start = time.monotonic()
        result, _ = self._put_multipart(source, key, digest)
        result.seconds = time.monotonic() - start
        return result

    # -- multipart with resume ------------------------------------------------------------
    def _checkpoint_path(self, source: "Source", key: str) -> Path:
        ident = f"{self.bucket.name}\0{key}\0{source.ident}\0{self.part_size}"
        return state_dir() / "uploads" / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")

    def _resume(self, checkpoint: Path, key: str) -> tuple[str | None, dict[int, dict[str, Any]], Any]:
        """The upload id and parts a checkpoint names, keeping only parts OSS still has, and the
        saved state of the source's hash (``OrderedDigest.snapshot``), if any."""
        try:
            saved = json.loads(checkpoint.read_text())
            upload_id, parts = saved["upload_id"], saved["parts"]
        except (OSError, ValueError, KeyError, TypeError):
            return None, {}, None
        listed = self.bucket.list_parts(key, upload_id)
        if listed is None:  # completed or aborted meanwhile: the checkpoint is stale
            checkpoint.unlink(missing_ok=True)
            return None, {}, None
        done = {int(n): p for n, p in parts.items() if int(n) in listed and listed[int(n)][0] == p["etag"]}
        return upload_id, done, saved.get("digest")

    def _put_multipart(self, source: "Source", key: str, digest: "OrderedDigest | None" = None) -> tuple[PushResult, str]:
        count = max(1, (source.size + self.part_size - 1) // self.part_size)
        checkpoint = self._checkpoint_path(source, key)
        upload_id, done, digest_state = self._resume(checkpoint, key)
        if digest is not None and digest_state is not None:
            digest.restore(digest_state)
        attempts = 0
        if upload_id is None:
            def init() -> str:
                nonlocal attempts
                attempts += 1
                return self.bucket.init_multipart(key)

            upload_id = _retrying(init)
        try:
            result = self._send_parts(source, key, count, checkpoint, upload_id, done, digest)
            if attempts > 1:  # an answer lost after OSS started an upload left one we never knew
                self._abort_orphans(key, upload_id)
            return result
        except CloudError as exc:
            if exc.code in (CRC_MISMATCH, HASH_MISMATCH):  # wrong bytes: leave no upload, object or checkpoint
                _best_effort(lambda: self.bucket.abort_multipart(key, upload_id))
                checkpoint.unlink(missing_ok=True)
            raise

    def _abort_orphans(self, key: str, ours: str) -> None:
        """Abort the uploads of ``key`` that are not ours and hold no part: those a retried start
        created and whose id never reached us (a concurrent push of the same key has parts, or
        soon will; at worst it starts again). Best effort: the object is stored already."""
        try:
            others = [u for u in _retrying(lambda: self.bucket.list_uploads(key)) if u != ours]
            for upload_id in others:
                if _retrying(lambda: self.bucket.list_parts(key, upload_id)) == {}:
                    _best_effort(lambda: self.bucket.abort_multipart(key, upload_id))
        except EascomfyError as exc:
            self.warn(f"{key}: could not clean up an upload a lost answer left behind ({exc})")

    def _send_parts(self, source: "Source", key: str, count: int, checkpoint: Path, upload_id: str,
                    done: dict[int, dict[str, Any]], digest: "OrderedDigest | None" = None) -> tuple[PushResult, str]:
        size = source.size
        resumed = len(done)
        lock = threading.Lock()

        def save() -> None:
            saved: dict[str, Any] = {"upload_id": upload_id, "key": key, "parts": done}
            if digest is not None and (state := digest.snapshot()) is not None:
                saved["digest"] = state  # covers every part in ``done``: a part is fed before it is sent
            write_atomic(checkpoint, json.dumps(saved))

        save()
        self.progress(sum(p["size"] for p in done.values()))

        # One part-sized buffer per worker thread, read into and sent from: memory stays at
        # ``workers * part_size`` for any number of parts, instead of growing with the malloc
        # arenas that a fresh 16 MiB bytes object per part leaves behind.
        buffers = threading.local()

        def read(offset: int, length: int) -> memoryview:
            buf = getattr(buffers, "buf", None)
            if buf is None:
                buf = buffers.buf = bytearray(self.part_size)
            view = memoryview(buf)[:length]
            source.read_into(offset, view)
            return view

        # A remote source (``pipelined``) is read over the network as slowly as OSS is written:
        # half the workers download while the other half upload, so each side keeps its streams
        # busy (``workers // 2`` per side) and memory stays ``workers * part_size``.
        stages = max(1, self.workers // 2) if getattr(source, "pipelined", False) and self.workers > 1 else 0
        reading = threading.BoundedSemaphore(stages) if stages else nullcontext()
        sending = threading.BoundedSemaphore(stages) if stages else nullcontext()

        def send(n: int) -> None:
            offset = (n - 1) * self.part_size
            length = min(self.part_size, size - offset)
            try:
                with reading:
                    data = read(offset, length)
                if digest is not None:
                    digest.feed(n, data)  # in part order, whichever part arrives first
                    if n in done:  # resumed without a saved hash state: read again for the hash only
                        return
            except BaseException:
                if digest is not None:
                    digest.fail()
                raise
            local = crc64(data)

            def part() -> tuple[int | None, str]:
                etag, remote = self.bucket.upload_part(key, upload_id, n, data)
                return remote, etag

            with sending:
                etag = self._verified(f"{key} part {n}", local, part)
            with lock:
                done[n] = {"etag": etag, "crc64": local, "size": length}
                save()
            self.progress(length)

        # A resumed part is read again only when the hash does not cover it yet.
        todo = [n for n in range(1, count + 1) if n not in done or (digest is not None and not digest.covers(n))]
        with source.opened():
            _bounded_parallel(send, todo, self.workers)
        if digest is not None:
            digest.check()  # before completing: a wrong hash leaves no object behind
        whole = done[1]["crc64"]
        for n in range(2, count + 1):
            whole = combine(whole, done[n]["crc64"], done[n]["size"])
        with _interrupt_deferred():  # once OSS completed the object, its checkpoint goes too
            remote, etag = _retrying(
                lambda: self.bucket.complete_multipart(key, upload_id, [(n, done[n]["etag"]) for n in range(1, count + 1)])
            )
            checkpoint.unlink(missing_ok=True)  # the upload id is used up either way
        try:
            _verify(key, whole, remote)
        except CloudError:
            _best_effort(lambda: self.bucket.delete(key))  # every part matched, the object does not
            raise
        return PushResult(source.name, key, size, whole, parts=count, resumed_parts=resumed), etag


# -- sources ------------------------------------------------------------------------------------
class Source(Protocol):
    """What the multipart engine reads parts from: a local file (``LocalSource``) or a remote
    ranged one (``storage.pull_source``). ``read_into`` fills the view exactly (or raises) and
    may be called from several threads at once, between ``opened()``'s enter and exit."""

    name: str  # shown and recorded (``PushResult.file``)
    size: int
    # (optional) ``pipelined = True``: reads are network transfers too; half the workers read
    # while half send (``_send_parts``)
    ident: str  # what an interrupted upload's checkpoint is found by

    def opened(self) -> ContextManager[Any]: ...
    def read_into(self, offset: int, view: memoryview) -> None: ...


class LocalSource:
    """A local file, read with ``preadv`` (no shared file position between the threads)."""

    def __init__(self, file: Path, st: os.stat_result) -> None:
        self.file, self.name, self.size = file, str(file), st.st_size
        self.ident = f"{file.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
        self._fd = -1

    @contextmanager
    def opened(self) -> Iterator["LocalSource"]:
        with open(self.file, "rb") as fh:
            self._fd = fh.fileno()
            try:
                yield self
            finally:
                self._fd = -1

    def read_into(self, offset: int, view: memoryview) -> None:
        got = 0
        while got < len(view):
            read_now = os.preadv(self._fd, [view[got:]], offset + got)
            if read_now == 0:
                raise EascomfyError(f"{self.file} changed while it was uploaded", "push it again")
            got += read_now


class OrderedDigest:
    """A hash over parts that arrive in any order, fed in part order: a part waits for the ones
    before it (the lowest part not yet fed is always in flight, so this never deadlocks, and memory
    stays one buffer per worker). ``check()`` compares with the expected hex digest.

    A SHA-256 is resumable (``storage.resumable_hash``): ``snapshot()`` goes into the upload's
    checkpoint, ``restore()`` in the next run, so the parts it covers are not read again."""

    def __init__(self, expected: str, what: str, algorithm: str = "sha256") -> None:
        self.expected, self.what, self.algorithm = expected.lower(), what, algorithm
        resumable = ResumableSha256.create() if algorithm == "sha256" else None
        self._resumable = resumable is not None
        self._hash: Any = resumable if resumable is not None else hashlib.new(algorithm)
        self._next = 1
        self._failed = False
        self._cond = threading.Condition()

    def feed(self, n: int, data: memoryview) -> None:
        with self._cond:
            while self._next != n and not self._failed:
                if n < self._next:  # covered by a restored state
                    return
                self._cond.wait(1)
            if self._failed:
                raise EascomfyError(f"{self.what}: stopped (another part failed)")
            self._hash.update(data)  # under the lock: a snapshot never sees half a part
            self._next = n + 1
            self._cond.notify_all()

    def covers(self, n: int) -> bool:
        """Whether part ``n`` is in the hash already (fed, or restored from a checkpoint)."""
        return n < self._next

    def snapshot(self) -> dict[str, Any] | None:
        """The hash's state and the next part it needs, for a checkpoint; None if not resumable."""
        if not self._resumable:
            return None
        with self._cond:
            return {"algorithm": self.algorithm, "next": self._next, "state": self._hash.state()}

    def restore(self, saved: Any) -> bool:
        """Pick up a ``snapshot()``; False (nothing changed) when it does not fit."""
        if not self._resumable or not isinstance(saved, dict) or saved.get("algorithm") != self.algorithm:
            return False
        resumed = ResumableSha256.create(str(saved.get("state", "")))
        nxt = saved.get("next")
        if resumed is None or not isinstance(nxt, int) or nxt < 1:
            return False
        with self._cond:
            self._hash, self._next = resumed, nxt
        return True

    def fail(self) -> None:
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    def check(self) -> None:
        actual = self._hash.hexdigest()
        if actual != self.expected:
            raise CloudError(
                f"{self.what}: {self.algorithm.upper()} mismatch (the source says {self.expected}, the bytes are {actual})",
                code=HASH_MISMATCH,
                hint="nothing was kept; pull again, or ask the source's owner",
            )


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold a first SIGINT (Ctrl-C) until the block is done, then raise it; a second one raises at
    once. Only the main thread receives signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


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


def _best_effort(call: Callable[[], Any]) -> None:
    """Clean-up after a failure: tried (with retries); its own failure must not hide the first."""
    try:
        _retrying(call)
    except EascomfyError:
        pass


def _verify(what: str, local: int, remote: int | None) -> None:
    if remote is None:
        raise CloudError(f"{what}: OSS did not return a CRC64; cannot verify the upload", code="NoCrc64")
    if remote != local:
        raise CloudError(
            f"{what}: CRC64 mismatch (local {local}, OSS {remote}); the stored data is not what was sent",
            code=CRC_MISMATCH,
            hint="push again; nothing was kept of this upload",
        )
