"""Hostile input to the claim report path (pvc:// sources): what a tenant who can read the nonce and reach the
listener can send. Each refusal sits next to a well-formed control; nothing here may raise anything but the
module's own error, crash the listener, or cost more than its bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmodel_operator.controller.claim_reports import ClaimExaminations, ClaimReportListener
from openmodel_operator.evidence.claim_report import (
    MAX_REPORT_BYTES,
    ClaimReportError,
    encode_report,
    parse_report,
)
from openmodel_operator.evidence.records import FileEntry, Reason
from openmodel_operator.planning import children, claim_examination

NONCE = "ab" * 16
SIG = b'{"mediaType": "bundle"}'
FILES = (
    FileEntry("config.json", 3, hashlib.sha256(b"abc").hexdigest()),
    FileEntry("model.sig", len(SIG), hashlib.sha256(SIG).hexdigest()),
)


def test_a_well_formed_report_parses_and_resolves_like_a_directory() -> None:
    report = parse_report(encode_report(NONCE, FILES, signature=SIG), NONCE)
    resolved = report.resolved("pvc://c/p", "model.sig")
    assert resolved.kind == "pvc" and resolved.files == tuple(sorted(FILES)) and resolved.signature_bundle == SIG


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"[" * 50 + b"]" * 50, "nested"),
        (b"[" * 200_000 + b"]" * 200_000, "JSON values"),
        (json.dumps({"format": "x", "nonce": NONCE}).encode(), "format"),
        (encode_report("cd" * 16, FILES), "another examination"),
        (encode_report(NONCE, FILES, signature=SIG).replace(b'"readme":null', b'"readme":null,"extra":1'), "fields"),
        (encode_report(NONCE, FILES).replace(b"config.json", b"../etc/passwd"), "path"),
        (encode_report(NONCE, FILES).replace(b'"size":3', b'"size":-3'), "size"),
        (encode_report(NONCE, FILES).replace(b'"size":3', b'"size":true'), "size"),
        (encode_report(NONCE, FILES, signature=SIG).replace(b'"signature":"', b'"signature":"!'), "base64"),
        (b" " * (MAX_REPORT_BYTES + 1), "bytes"),
        (
            json.dumps(
                {
                    "format": "openmodel.io/claim-report/v1",
                    "nonce": NONCE,
                    "error": {"reason": "Signed", "message": "x"},
                }
            ).encode(),
            "reports",
        ),
    ],
)
def test_malformed_or_oversized_reports_are_refused_with_a_reason(body: bytes, why: str) -> None:
    with pytest.raises(ClaimReportError, match=why):
        parse_report(body, NONCE)


def test_a_report_that_contradicts_itself_is_refused() -> None:
    other = b'{"mediaType": "other"}'
    with pytest.raises(ClaimReportError, match="does not hash"):
        parse_report(encode_report(NONCE, FILES, signature=other), NONCE).resolved("pvc://c/p", "model.sig")
    with pytest.raises(ClaimReportError, match="does not carry"):
        parse_report(encode_report(NONCE, FILES), NONCE).resolved("pvc://c/p", "model.sig")


def test_documents_that_do_not_hash_to_their_listed_digest_are_not_evidence() -> None:
    readme = b"---\nlicense: mit\n---\n"
    listed = (*FILES, FileEntry("README.md", len(readme), hashlib.sha256(readme).hexdigest()))
    kept = parse_report(encode_report(NONCE, listed, signature=SIG, readme=readme), NONCE)
    assert kept.resolved("pvc://c/p", "model.sig").readme == readme  # control
    forged = parse_report(encode_report(NONCE, listed, signature=SIG, readme=b"---\nlicense: apache-2.0\n---\n"), NONCE)
    resolved = forged.resolved("pvc://c/p", "model.sig")
    assert resolved.readme is None and resolved.card == {}


def test_an_error_report_names_only_claim_reasons_and_its_message_is_escaped() -> None:
    report = parse_report(encode_report(NONCE, error=(Reason.SYMLINK_NOT_ALLOWED, "link\u202eevil")), NONCE)
    assert report.error is not None and report.error[0] is Reason.SYMLINK_NOT_ALLOWED
    assert "\u202e" not in report.error[1]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_but_a_report_error(body: bytes) -> None:
    with contextlib.suppress(ClaimReportError):
        parse_report(body, NONCE)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
        max_leaves=30,
    )
)
def test_arbitrary_json_in_the_files_field_never_raises_anything_but_a_report_error(value: Any) -> None:
    doc = {
        "format": "openmodel.io/claim-report/v1",
        "nonce": NONCE,
        "files": value,
        "signature": None,
        "readme": None,
        "openness": None,
    }
    with contextlib.suppress(ClaimReportError):
        parse_report(json.dumps(doc).encode(), NONCE)


# ---------------------------------------------------------------- the listener


async def _listener(**kwargs: Any) -> tuple[ClaimExaminations, ClaimReportListener, list[tuple[str, str]]]:
    exams = ClaimExaminations()
    woken: list[tuple[str, str]] = []
    exams.on_report = woken.append
    listener = await ClaimReportListener(exams, **kwargs).start("127.0.0.1", 0)
    return exams, listener, woken


async def _request(port: int, raw: bytes, pause: float = 0.0, source: str | None = None) -> bytes:
    """Send ``raw`` (from the loopback address ``source``, to look like another client) and read the answer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0) if source is not None else None
    )
    writer.write(raw)
    await writer.drain()
    if pause:
        await asyncio.sleep(pause)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def _post(nonce: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"POST /claim-reports/{nonce} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_the_listener_keeps_one_report_for_a_nonce_it_waits_for_and_refuses_the_rest() -> None:
    exams, listener, woken = await _listener()
    try:
        entry = exams.begin(("ns", "m"), "uid", ("pvc://c/p", "model.sig"))
        body = encode_report(entry.nonce, FILES, signature=SIG)
        assert _status(await _request(listener.port, _post("0" * 32, body))) == 404  # nobody waits for it
        assert _status(await _request(listener.port, _post(entry.nonce, body, "text/plain"))) == 415
        assert (
            _status(await _request(listener.port, b"GET /claim-reports/" + entry.nonce.encode() + b" HTTP/1.1\r\n\r\n"))
            == 405
        )
        assert _status(await _request(listener.port, _post(entry.nonce, body))) == 202  # control
        assert woken == [("ns", "m")] and entry.report == body
        assert _status(await _request(listener.port, _post(entry.nonce, b"{}"))) == 409  # one report per examination
        assert entry.report == body
        big = f"POST /claim-reports/{entry.nonce} HTTP/1.1\r\nContent-Type: application/json\r\n"
        assert (
            _status(await _request(listener.port, f"{big}Content-Length: {MAX_REPORT_BYTES + 1}\r\n\r\n".encode()))
            == 413
        )
        assert (
            _status(await _request(listener.port, b"POST /x HTTP/1.1\r\n" + b"X: " + b"a" * 20_000 + b"\r\n\r\n"))
            == 400
        )
    finally:
        await listener.close()


async def test_a_slow_client_is_cut_off_and_the_listener_still_answers_others() -> None:
    exams, listener, _ = await _listener(deadline=0.3)
    try:
        entry = exams.begin(("ns", "m"), "uid", ("pvc://c/p", "model.sig"))
        slow = asyncio.create_task(_request(listener.port, b"POST /claim-reports/", pause=1.0))
        body = encode_report(entry.nonce, FILES, signature=SIG)
        assert _status(await _request(listener.port, _post(entry.nonce, body))) == 202
        assert _status(await slow) == 408
    finally:
        await listener.close()


async def test_too_many_requests_at_once_or_in_a_burst_are_refused() -> None:
    _exams, listener, _ = await _listener(max_connections=1, deadline=1.0, rate=1.0, burst=2)
    try:
        holder = asyncio.create_task(_request(listener.port, b"POST /claim", pause=0.5))
        await asyncio.sleep(0.1)
        assert _status(await _request(listener.port, _post("0" * 32, b"{}"))) == 503  # the one slot is taken
        await holder
        answers = [_status(await _request(listener.port, _post("0" * 32, b"{}"))) for _ in range(4)]
        assert answers[0] == 404 and 429 in answers  # the bucket empties
    finally:
        await listener.close()


# ---------------------------------------------------------------- the Job


def test_the_claim_examination_job_has_no_token_a_read_only_claim_and_bounds() -> None:
    from test_children import SETTINGS, check_valid

    ref = children.ModelRef("granite", "models", "uid-1", 1)
    job = claim_examination.examine_job(
        ref, "pvc://staging/models/granite", "model.sig", NONCE, "http://op.svc:8082/claim-reports", SETTINGS, 600
    )
    check_valid(job)  # against the Kubernetes 1.28 schemas
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": "staging", "readOnly": True}
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "claim")
    assert mount == {"name": "claim", "mountPath": "/claim", "readOnly": True, "subPath": "models/granite"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert job["spec"]["activeDeadlineSeconds"] == 600 and job["spec"]["backoffLimit"] == 1
    assert job["metadata"]["name"].startswith("granite-examine-")
    # a new nonce is a new Job (templates are immutable)
    again = claim_examination.examine_job(
        ref, "pvc://staging/models/granite", "model.sig", "cd" * 16, "http://op.svc:8082/claim-reports", SETTINGS, 600
    )
    assert again["metadata"]["name"] != job["metadata"]["name"]


def test_reports_held_at_once_are_bounded_in_count_and_bytes() -> None:
    exams = ClaimExaminations(max_pending=2, max_pending_bytes=100)
    a, b, c = (exams.begin(("ns", m), "uid", ("pvc://c/p", "model.sig")) for m in "abc")
    assert exams.deliver(a.nonce, b"x" * 60) == 202  # control
    assert exams.deliver(b.nonce, b"x" * 60) == 503  # over the bytes
    assert exams.deliver(b.nonce, b"x" * 30) == 202
    assert exams.deliver(c.nonce, b"x") == 503  # over the count
    exams.drop(("ns", "a"))  # decided: its bytes are released
    assert exams.deliver(c.nonce, b"x") == 202
