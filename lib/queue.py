"""QStash on both sides: publishing slice messages, and verifying the ones we receive."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace

from qstash import QStash, Receiver
from qstash.errors import SignatureError

from lib.config import CLOCK_TOLERANCE_SECONDS, Settings
from lib.errors import BadRequest, Unauthorized
from lib.phases import PHASES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One slice to run: job, phase, run (bumped by every retry) and slice number.

    `delay` and `busy` are publishing options, not part of the body: a delivery that found
    the job locked re-publishes itself `delay` seconds later under a deduplication id of its
    own (`busy`, a time bucket: copies that were turned away together come back once).
    """

    job: str
    phase: str
    run: int
    slice: int
    delay: int = 0
    busy: int = 0

    @classmethod
    def from_body(cls, body: bytes) -> Message:
        try:
            data = json.loads(body)
            msg = cls(str(data["job"]), str(data["phase"]), int(data["run"]), int(data["slice"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"not a slice message: {exc}") from exc
        if msg.phase not in PHASES:
            raise BadRequest(f"unknown phase {msg.phase!r}")
        return msg

    @property
    def dedup_id(self) -> str:
        # Deterministic, so a re-published continuation is deduplicated by QStash.
        base = f"{self.job}.{self.phase}.{self.run}.{self.slice}"
        return f"{base}.busy{self.busy}" if self.busy else base

    @property
    def body(self) -> dict[str, object]:
        return {"job": self.job, "phase": self.phase, "run": self.run, "slice": self.slice}

    def next(self) -> Message:
        return Message(self.job, self.phase, self.run, self.slice + 1)

    def later(self, delay: int) -> Message:
        """This same slice again in `delay` seconds (see the class docstring)."""
        return replace(self, delay=delay, busy=int(time.time() // max(delay, 1)))


class Publisher:
    def __init__(self, settings: Settings):
        self.settings = settings
        # The SDK's own retries are short: a publish that keeps failing makes the slice
        # reply 5xx, and QStash's redelivery re-publishes (same deduplication id).
        self.client = QStash(
            settings.qstash_token,
            base_url=settings.qstash_url,
            retry={"retries": 2, "backoff": lambda n: 100.0 * (n + 1)},
        )

    def publish(self, msg: Message) -> None:
        s = self.settings
        self.client.message.publish_json(
            url=s.endpoint_url(f"api/import/{msg.phase}"),
            body=msg.body,
            deduplication_id=msg.dedup_id,
            failure_callback=s.endpoint_url("api/import/failed"),
            retries=s.qstash_retries,
            timeout=s.delivery_timeout,
            delay=msg.delay or None,
        )
        log.info("slice.published job=%s phase=%s run=%s slice=%s", msg.job, msg.phase, msg.run, msg.slice)


def verify_signature(settings: Settings, signature: str | None, body: bytes, path: str) -> None:
    """Raise Unauthorized unless `signature` is QStash's, over this raw body, for this URL.

    The URL is built from APP_URL, never from the request's Host header. Empty keys are a
    configuration error, refused outright: HMAC with an empty key is forgeable. The token's
    time claims get the same clock tolerance as user tokens (lib.config).
    """
    if not (settings.current_signing_key and settings.next_signing_key):
        raise Unauthorized("QStash signing keys are not configured")
    if not signature:
        raise Unauthorized("missing Upstash-Signature")
    try:
        text = body.decode("utf-8")
        receiver = Receiver(settings.current_signing_key, settings.next_signing_key)
        receiver.verify(
            signature=signature,
            body=text,
            url=settings.endpoint_url(path),
            clock_tolerance=CLOCK_TOLERANCE_SECONDS,
        )
    except (SignatureError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise Unauthorized(f"invalid QStash signature: {exc}") from exc
