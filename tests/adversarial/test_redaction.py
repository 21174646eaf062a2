"""Server text is redacted and escaped; file names that display deceptively are refused (issue 8, property 17)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from hostile_hub import is_model_info, is_tree, send, send_json

from hubstub import HubStub
from openmodel_operator.commands.fetch import JsonLog
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.paths import check_relative_path
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import REDACTED, is_unsafe_char, printable, redact
from openmodel_operator.sources.directory import resolve_directory
from openmodel_operator.sources.hub import HubClient, resolve_hub

FILES = {"README.md": b"---\nlicense: mit\n---\n", "config.json": b"{}", "model.safetensors": b"w" * 100}
PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"


def echo_authorization(status: int) -> Any:
    """A server that puts the Authorization header it received (and some bidi) in X-Error-Message."""

    def answer(handler: Any) -> bool:
        if not is_model_info(handler):
            return False
        echoed = handler.headers.get("Authorization", "")
        message = f"denied for {echoed} \u202egnp.exe (token {echoed.removeprefix('Bearer ')})"
        handler.stub.echoed.append(message)  # before answering: the client may be done before we are
        send(handler, status, b"{}", {"X-Error-Message": message})
        return True

    return answer


@pytest.mark.parametrize("status", [400, 401, 404, 418, 500])
def test_an_echoed_token_never_reaches_the_message_or_logs(
    hub: HubStub, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    hub.add_model("org/model", FILES)
    hub.echoed = []  # type: ignore[attr-defined]
    hub.override = echo_authorization(status)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/model", endpoint=hub.url, token=hub.token)
    assert any(hub.token in m for m in hub.echoed)  # type: ignore[attr-defined]  # the server did echo it
    assert not hub.server_errors
    for text in (exc.value.message, str(exc.value), repr(exc.value), caplog.text):
        assert hub.token not in text
        assert "\u202e" not in text
    hub.override = None
    assert resolve_hub("hf://org/model", endpoint=hub.url, token=hub.token).card == {"license": "mit"}


def test_server_text_is_escaped_and_clipped(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    long = "x" * 5000

    def answer(handler: Any) -> bool:
        if is_model_info(handler):
            send(handler, 400, b"{}", {"X-Error-Message": "bad\u2028line\x85" + long})
            return True
        return False

    hub.override = answer
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/model", endpoint=hub.url)
    assert "bad\\u2028line\\x85" in exc.value.message
    assert len(exc.value.message) < 600


def test_transport_error_text_is_redacted() -> None:
    client = HubClient("https://hub.example", "org/m", "main", token="hf_SecretTokenValue0123456789abcd")
    error = client.transport_error(
        OSError("proxy said: Authorization: Bearer hf_SecretTokenValue0123456789abcd \u202e\nsecond line"), "x"
    )
    assert "hf_SecretTokenValue" not in error.message
    assert "\u202e" not in error.message and "second line" not in error.message


def test_a_listed_name_with_a_bidi_override_is_refused(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    name = "model\u202esafetensors.txt"

    def answer(handler: Any) -> bool:
        if not is_tree(handler):
            return False
        entries = [{"type": "file", "oid": "1" * 40, "size": 2, "path": "config.json"}]
        entries.append({"type": "file", "oid": "2" * 40, "size": 2, "path": name})
        send_json(handler, entries)
        return True

    hub.override = answer
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/model", endpoint=hub.url)
    assert exc.value.reason is Reason.UNSAFE_FILE_NAME
    assert "model\\u202esafetensors.txt" in exc.value.message  # shown escaped
    assert "\u202e" not in exc.value.message
    assert hub.total_downloads() == 0
    hub.override = None
    resolve_hub("hf://org/model", endpoint=hub.url)


@pytest.mark.parametrize(
    "name", ["a\u2028b.txt", "a\u2029b", "x\u0085y", "rtl\u200f.json", "\u2066iso\u2069.py", "soft\u00adhyphen"]
)
def test_deceptive_names_are_refused_in_a_directory(tmp_path: Path, name: str) -> None:
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path)
    assert exc.value.reason is Reason.UNSAFE_FILE_NAME
    assert not any(is_unsafe_char(ch) for ch in exc.value.message)


@pytest.mark.parametrize("name", ["modèle/poids.txt", "日本語.json", "emoji-🙂.md", "a b.txt"])
def test_ordinary_unicode_names_are_accepted(tmp_path: Path, name: str) -> None:
    assert check_relative_path(name, "test") == name
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(b"x")
    assert [f.path for f in resolve_directory(tmp_path).files] == [name]


def test_redact_removes_secrets_pem_and_credentials() -> None:
    text = f"tok=s3cr3t-value pem={PEM} hdr=Bearer abc.def-ghi other=hf_AbCdEf0123456789AbCdEf0123 Basic dXNlcjpwdw=="
    cleaned = redact(text, ["s3cr3t-value", None, ""])
    leaks = ("s3cr3t-value", "MIGHAgEA", "abc.def-ghi", "hf_AbCdEf0123456789AbCdEf0123", "dXNlcjpwdw==")
    for leaked in leaks:
        assert leaked not in cleaned
    assert cleaned.count(REDACTED) >= 5
    assert redact("an unterminated -----BEGIN CERTIFICATE-----\nMIIB", []) == f"an unterminated {REDACTED}"
    assert redact("hf_hub_download failed", []) == "hf_hub_download failed"  # not a token shape


def test_printable_escapes_and_clips() -> None:
    assert printable("a\u202eb\u2028c\x1bd\x85e\\") == "a\\u202eb\\u2028c\\x1bd\\x85e\\\\"
    assert printable("x" * 300, 10) == "x" * 10 + "..."
    assert printable("ok ünïcödé") == "ok ünïcödé"


def test_the_fetch_log_redacts_and_escapes() -> None:
    out = io.StringIO()
    log = JsonLog(out, secrets=["hf_the_pod_token_value"])
    log("failed", message="server said Bearer hf_the_pod_token_value \u202e and hf_ZzZz0123456789ZzZz0123456789")
    line = out.getvalue()
    assert "hf_the_pod_token_value" not in line and "hf_ZzZz" not in line
    assert "\u202e" not in line and "\\\\u202e" in line  # escaped, then JSON-encoded


def test_the_verify_report_escapes_card_text(hub: HubStub, capsys: pytest.CaptureFixture[str]) -> None:
    from openmodel_operator.cli import main

    card = '---\nlicense: "mit\u202e lpt-3.0\u2028Verdict    TRUSTED"\n---\n'.encode()
    hub.add_model("org/model", {**FILES, "README.md": card})
    code = main(["verify", "hf://org/model", "--endpoint", hub.url])
    out = capsys.readouterr().out
    assert code == 1
    assert not any(is_unsafe_char(ch) for ch in out if ch != "\n")
    assert "\nVerdict    TRUSTED" not in out  # a forged line cannot appear


# A mirror that receives the token (any shape, not only hf_...) and echoes it back where a message quotes
# server text verbatim: as the repository id, or as a file name.
ECHOED = "s3cr3t-mirror-token-1234567890"


def _echoing(where: str) -> Any:
    def hostile(handler: Any) -> bool:
        auth = handler.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else "none"
        if "/revision/" in handler.path:
            handler._json({"id": token if where == "id" else "org/model", "sha": "a" * 40})
            return True
        if "/tree/" in handler.path:
            path = f"../{token}" if where == "unsafe" else f"{token}.bin"
            handler._json([{"type": "file", "path": path, "size": 3, "oid": "b" * 40}])
            return True
        return False

    return hostile


@pytest.mark.parametrize("where", ["id", "weights", "unsafe"])
def test_a_token_echoed_as_a_name_never_reaches_a_message(hub: HubStub, where: str) -> None:
    hub.override = _echoing(where)
    with pytest.raises(SourceError) as raised:
        resolve_hub("hf://org/model", endpoint=hub.url, token=ECHOED)
    assert ECHOED not in raised.value.message and ECHOED not in str(raised.value)


def test_a_short_token_is_not_redacted_from_every_message() -> None:
    """One tenant's one-letter "token" must not turn every message into "sp[redacted]c..." (nor be probed)."""
    from openmodel_operator.evidence.errors import TrustError
    from openmodel_operator.evidence.records import Reason
    from openmodel_operator.evidence.text import remember_secret

    remember_secret("e")
    remember_secret("a-real-token-0123456789")
    error = TrustError(Reason.SIGNATURE_MISSING, "spec.trust.signature: model.sig not found; a-real-token-0123456789")
    assert "model.sig" in error.message and "a-real-token-0123456789" not in error.message
