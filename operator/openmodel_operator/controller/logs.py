"""Structured logs: one JSON object per line when asked, and never a token or PEM block in either format."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

_SECRET = re.compile(
    r"(-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----)|(hf_[A-Za-z0-9]{8,})|(Bearer\s+[A-Za-z0-9._~+/=-]+)"
)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """Replace tokens, bearer credentials and PEM blocks by a marker."""
    return _SECRET.sub("[REDACTED]", text)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}`` per line; extra fields come from ``extra=``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            doc["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class RedactingFormatter(logging.Formatter):
    """Plain text, with the same redaction."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(json_format: bool, level: int = logging.INFO) -> None:
    """Install one handler on the root logger (Kopf's own loggers included)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_format else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Kopf logs every successful event handler at INFO: one line per watch event is noise at scale
    quiet = level if level <= logging.DEBUG else logging.WARNING
    logging.getLogger("kopf.objects").setLevel(quiet)
    for client in ("httpx", "httpx2", "httpcore", "httpcore2"):  # one INFO line per HTTP request otherwise
        logging.getLogger(client).setLevel(quiet)
