"""One builder per artifact id on an object store: a claim object with a lease.

There is no file lock on S3. The builder creates `<prefix>/.claims/<stage>-<id>.json` with a conditional
put (`If-None-Match: *`: exactly one of many concurrent creators succeeds) and rewrites it every third of
the lease from a thread (`If-Match: <its ETag>`). Others wait while the lease runs. A claim whose lease
ran out belongs to a builder that died (SIGKILL, a lost spot node); a waiter takes it over with one
conditional put on that claim's ETag, so of several waiters only one wins. Expiry is judged on the
server's clock (the claim's Last-Modified against the response's Date), so node clocks may differ.
"""
from __future__ import annotations

import email.utils
import json
import os
import socket
import threading
import time
import uuid
from typing import Callable

from dr4sr.errors import DR4SRError
from dr4sr.storage.s3 import S3Root

CLAIMS = ".claims"
LEASE_ENV = "DR4SR_CLAIM_LEASE_S"
DEFAULT_LEASE_S = 60.0


class ClaimLost(DR4SRError):
    """This builder's lease ran out and another builder took the id over: its result is not published."""


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_S)


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3Claim:
    def __init__(self, root: S3Root, name: str, lease_s: float | None = None):
        self.root, self.key = root, root.key(f"{CLAIMS}/{name}.json")
        self.lease_s = lease_s or lease_seconds()
        self.owner = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        # who holds it, for the waiters' log line; never credentials
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "lease_s": self.lease_s, "written": time.time()}).encode()

    def _put(self, **condition) -> bool:
        """A conditional put of our claim; False when the condition failed (someone else holds it)."""
        from botocore.exceptions import ClientError

        try:
            out = self.root.client.put_object(Bucket=self.root.bucket, Key=self.key, Body=self._body(), **condition)
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise
        self.etag = out["ETag"]
        return True

    def _holder(self) -> tuple[str, dict, float] | None:
        """(ETag, body, seconds since its last renewal on the server's clock) of the current claim."""
        from botocore.exceptions import ClientError

        try:
            out = self.root.client.get_object(Bucket=self.root.bucket, Key=self.key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            body = json.loads(out["Body"].read())
        except ValueError:
            body = {}
        date = out.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
        return out["ETag"], body, now - out["LastModified"].timestamp()

    def acquire(self, log: Callable[[str], None] | None = None, what: str = "") -> None:
        told = False
        while True:
            if self._put(IfNoneMatch="*"):
                break
            held = self._holder()
            if held is None:
                continue  # released between our put and our read: try again at once
            etag, body, age = held
            lease = float(body.get("lease_s") or self.lease_s)
            if age > lease:
                if self._put(IfMatch=etag):
                    if log is not None:
                        log(f"taking over {what}: its builder ({body.get('host')} pid {body.get('pid')}) "
                            f"stopped renewing its claim {age:.0f}s ago")
                    break
                continue  # another waiter took it over first
            if log is not None and not told:
                log(f"waiting for {what}: {body.get('host')} pid {body.get('pid')} is computing it")
                told = True
            time.sleep(min(5.0, max(0.2, lease / 4)))
        self._thread = threading.Thread(target=self._renew, name=f"dr4sr-claim-{self.key}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not self._put(IfMatch=self.etag):
                    held = self._holder()
                    if held is not None and held[1].get("owner") == self.owner:
                        self.etag = held[0]  # a conflicting write of our own (a retried put): still ours
                        continue
                    self.lost.set()  # taken over: we stalled longer than the lease
                    return
            except Exception:  # a network blip: the next renewal may still be in time
                continue

    def check(self) -> None:
        if self.lost.is_set():
            raise ClaimLost(f"the claim {self.key} expired and another builder took it over; not publishing "
                            f"this build (raise ${LEASE_ENV} if builds stall longer than {self.lease_s:.0f}s)")

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost.is_set() or self.etag is None:
            return
        try:  # only our own claim: a taker's claim has another ETag
            self.root.client.delete_object(Bucket=self.root.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "NoSuchKey", "412", "404"):
                raise
