"""Schemathesis hooks for `.ci/schemathesis`: what the OpenAPI document says in words
that no JSON Schema keyword can, given to schemathesis as generators.

- `image/png`, `image/jpeg`, `image/webp` bodies (PUT /me/avatar) are images: the server
  judges an upload by its content, so random bytes are no valid example of these media
  types. Drawn here as real images of random sizes and pixels.
- `Payments-Signature` (POST /webhooks/payments) is an HMAC of the body with the
  provider's secret: a drawn header that has the documented shape is replaced by the
  signature of the body actually sent. A header of another shape (or none) is left as
  drawn, and the server must refuse it.
- `X-Telegram-Bot-Api-Secret-Token` (POST /webhooks/telegram) is the configured secret: a
  drawn header of the documented shape is replaced by it; one of another shape (or none) is
  left as drawn, and the server must refuse it.
- `Idempotency-Key` names one request: the server answers a key reused with another body
  422, as the IETF draft asks. Keys are drawn per case and short ones repeat, so each
  well-formed drawn key gets a random prefix (keeping it well formed); one that is not
  well formed is left as drawn.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import time
import uuid

import schemathesis
from hypothesis import strategies as st
from PIL import Image

WEBHOOK_SECRET = os.environ["ST_WEBHOOK_SECRET"].encode()
TELEGRAM_SECRET = os.environ["ST_TELEGRAM_SECRET"]
TELEGRAM_HEADER = "x-telegram-bot-api-secret-token"
SIGNATURE = re.compile(r"^t=[0-9]{1,12},v1=[0-9a-f]{64}$")
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")


@st.composite
def images(draw: st.DrawFn, format: str) -> bytes:
    width = draw(st.integers(min_value=1, max_value=96))
    height = draw(st.integers(min_value=1, max_value=96))
    mode = draw(st.sampled_from(["RGB", "RGBA", "L"] if format != "JPEG" else ["RGB", "L"]))
    pixels = draw(st.binary(min_size=16, max_size=64))
    image = Image.frombytes(mode, (width, height), (pixels * (width * height * 4 // len(pixels) + 1))[: width * height * len(mode)])
    out = io.BytesIO()
    image.save(out, format=format)
    return out.getvalue()


schemathesis.openapi.media_type("image/png", images("PNG"))
schemathesis.openapi.media_type("image/jpeg", images("JPEG"))
schemathesis.openapi.media_type("image/webp", images("WEBP"))


class SignWebhook:
    """A requests auth: signs the body exactly as it is sent."""

    def __call__(self, request):
        drawn = request.headers.get("Payments-Signature")
        if drawn is not None and SIGNATURE.match(drawn):
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            timestamp = str(int(time.time()))
            mac = hmac.new(WEBHOOK_SECRET, timestamp.encode() + b"." + body, hashlib.sha256)
            request.headers["Payments-Signature"] = f"t={timestamp},v1={mac.hexdigest()}"
        return request


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path == "/webhooks/payments":
        kwargs["auth"] = SignWebhook()
    headers = case.headers or {}
    if case.operation.path == "/webhooks/telegram":
        for name in list(headers):
            drawn = headers[name]
            if name.lower() == TELEGRAM_HEADER and isinstance(drawn, str) and 1 <= len(drawn) <= 256:
                headers[name] = TELEGRAM_SECRET
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and IDEMPOTENCY_KEY.match(key):
                headers[name] = (uuid.uuid4().hex[:12] + key)[:255]
