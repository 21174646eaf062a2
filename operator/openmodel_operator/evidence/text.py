"""Making text from a server safe to show: secrets removed, invisible and reordering characters escaped.

A Hub (or a mirror, or a proxy in between) chooses the bytes of ``X-Error-Message``, of error bodies
and of the exception strings a transport error carries. Those strings end up in conditions, Events,
logs and the CLI, so a hostile server could echo back the ``Authorization`` header it received, or
use bidi overrides and line separators to make a message read differently from what it says. Every
piece of server text therefore goes through ``redact`` then ``printable`` (``clean`` does both).

Both functions are linear in the length of the text: no regular expression here can backtrack.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable

REDACTED = "[redacted]"
DEFAULT_LIMIT = 200
_PEM_BEGIN = "-----BEGIN "
_PEM_END = "-----END "
_PEM_DASHES = "-----"

# Token shapes worth removing even when the secret itself was not passed in (another user's token
# echoed by a proxy): ``Bearer <anything up to a separator>`` and Hugging Face tokens (``hf_...``,
# ``api_org_...``). Each is a single character class repetition: linear, no backtracking.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;\"'<>]+")
_HF_TOKEN = re.compile(r"\b(?:hf|api_org)_[A-Za-z0-9]{20,}")

# Characters that change how text reads without being visible: bidi embeddings, overrides and
# isolates, marks, and the Unicode line/paragraph separators. Escaped even though printable() would
# catch them by category, so the list is explicit for readers and tests.
BIDI_AND_SEPARATORS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c", "\u2028", "\u2029"]
)
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def is_unsafe_char(ch: str) -> bool:
    """True for a character that must never be shown raw: C0/C1 controls, DEL, bidi, separators, format chars."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F or ch in BIDI_AND_SEPARATORS:
        return True
    return code > 0x9F and unicodedata.category(ch) in _ESCAPED_CATEGORIES


def _remove_pem_blocks(text: str) -> str:
    """Every ``-----BEGIN ...----- ... -----END ...-----`` block (to the end when unterminated) removed."""
    out: list[str] = []
    position = 0
    while True:
        start = text.find(_PEM_BEGIN, position)
        if start < 0:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position:start])
        out.append(REDACTED)
        end = text.find(_PEM_END, start + len(_PEM_BEGIN))
        if end < 0:
            return "".join(out)
        close = text.find(_PEM_DASHES, end + len(_PEM_END))
        position = len(text) if close < 0 else close + len(_PEM_DASHES)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets``, PEM blocks, ``Bearer``/``Basic`` credentials or Hub tokens.

    Secrets are removed longest first, so a secret that contains another is removed whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _remove_pem_blocks(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _HF_TOKEN.sub(REDACTED, text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` with unsafe characters escaped (``\\u202e``, ``\\x0a``...) and clipped to ``limit`` characters.

    Backslashes are escaped too, so an escaped display cannot be forged by a server sending the
    escape sequence itself. A clipped text ends with ``...``.
    """
    out: list[str] = []
    length = 0
    for ch in text:
        piece = "\\\\" if ch == "\\" else _escape(ch) if is_unsafe_char(ch) else ch
        if length + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with ``...`` when cut (nothing escaped)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def visible(text: str) -> str:
    """``text`` with unsafe characters escaped and nothing else changed (no clipping, backslashes kept).

    For whole reports built from already-checked parts, where a doubled backslash would only confuse.
    """
    if not any(is_unsafe_char(ch) for ch in text):
        return text
    return "".join(_escape(ch) if is_unsafe_char(ch) else ch for ch in text)


def clean(text: str, secrets: Iterable[str | None] = (), limit: int = DEFAULT_LIMIT) -> str:
    """Server text ready for a message: ``printable(redact(text, secrets), limit)``."""
    return printable(redact(text, secrets), limit)


# ---------------------------------------------------------------- logs of the HTTP libraries

MIN_SECRET_CHARS = 8
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MAX_LOG_CHARS = 10_000
# Loggers that write server text: httpx logs the reason phrase of every answer, httpcore (at DEBUG)
# every response header, X-Error-Message included. A filter on a logger sees only its own records,
# so each one is named.
HTTP_LOGGERS = (
    "httpx2",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.connection",
    "httpcore2.proxy",
    "httpcore2.socks",
    "huggingface_hub",
)


def remember_secret(secret: str | None) -> None:
    """Add a credential the process holds to those every HTTP library log record is cleaned of.

    Too short a value is not a credential anyone could leak by accident, but redacting it would mangle every
    message (and let an endpoint probe for it): only values of MIN_SECRET_CHARS or more are remembered.
    """
    if secret and len(secret) >= MIN_SECRET_CHARS:
        with _SECRETS_LOCK:
            _SECRETS.update((secret, f"Bearer {secret}"))


def remembered_secrets() -> tuple[str, ...]:
    """The credentials this process holds (Hub tokens it sent), to redact from any text it shows."""
    with _SECRETS_LOCK:
        return tuple(_SECRETS)


class RedactingFilter(logging.Filter):
    """Removes remembered secrets and credential shapes from a record, and escapes unsafe characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business, not a leak
            return True
        with _SECRETS_LOCK:
            secrets = tuple(_SECRETS)
        cleaned = redact(message, secrets)
        if any(is_unsafe_char(ch) for ch in cleaned):
            cleaned = printable(cleaned, MAX_LOG_CHARS)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(names: Iterable[str] = HTTP_LOGGERS) -> None:
    """Attach the redacting filter to the HTTP libraries' loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


__all__ = [
    "BIDI_AND_SEPARATORS",
    "REDACTED",
    "RedactingFilter",
    "clean",
    "clip",
    "install_log_redaction",
    "is_unsafe_char",
    "printable",
    "redact",
    "remember_secret",
    "remembered_secrets",
    "visible",
]
