"""Webhook settings, TLS files and the opt-out: errors name the variable, the value and the fix."""

from __future__ import annotations

import logging
import pathlib

import kopf
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from openmodel_operator.controller import webhooks
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.controller.webhook_registration import shape
from openmodel_operator.controller.webhook_settings import WebhookSettings, operator_users
from openmodel_operator.controller.webhook_tls import given_files, self_signed


def test_defaults_serve_by_url_on_loopback_and_the_manifests_through_the_service() -> None:
    local = WebhookSettings.from_env({})
    assert local.enabled and local.address == "127.0.0.1" and local.service is None
    pod = WebhookSettings.from_env(
        {
            "OPENMODEL_WEBHOOK_ADDRESS": "0.0.0.0",
            "OPENMODEL_WEBHOOK_SERVICE": "openmodel-system/openmodel-operator-webhook:443",
            "OPENMODEL_SERVICE_ACCOUNT": "openmodel-operator",
            "OPENMODEL_POD_NAMESPACE": "openmodel-system",
        }
    )
    assert pod.service_ref() == ("openmodel-system", "openmodel-operator-webhook", 443)
    assert pod.operator_users == ("system:serviceaccount:openmodel-system:openmodel-operator",)


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"OPENMODEL_WEBHOOKS": "maybe"}, "OPENMODEL_WEBHOOKS='maybe' is not one of on, off"),
        ({"OPENMODEL_WEBHOOK_PORT": "https"}, "OPENMODEL_WEBHOOK_PORT='https' is not a port number"),
        ({"OPENMODEL_WEBHOOK_SERVICE": "just-a-name"}, "is not namespace/name[:port]"),
        ({"OPENMODEL_WEBHOOK_ADDRESS": "localhost"}, "is not an IP address"),
        ({"OPENMODEL_WEBHOOK_URL_HOST": "h", "OPENMODEL_WEBHOOK_SERVICE": "a/b"}, "are both set"),
    ],
)
def test_bad_settings_are_refused_naming_the_value_and_the_fix(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError) as raised:
        WebhookSettings.from_env(env)
    assert complaint in str(raised.value)


def test_the_operator_identity_comes_from_the_setting_or_the_pods_service_account(tmp_path: pathlib.Path) -> None:
    assert operator_users({"OPENMODEL_OPERATOR_USER": "a, b"}) == ("a", "b")
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("ops\n")
    assert operator_users({"OPENMODEL_SERVICE_ACCOUNT": "om"}, str(namespace_file)) == (
        "system:serviceaccount:ops:om",
    )
    assert operator_users({}, str(namespace_file)) == ()  # unknown: the guard stays off (never refuses the operator)


def test_the_self_signed_ca_signs_the_served_names_and_nothing_else_does(tmp_path: pathlib.Path) -> None:
    files = self_signed(["openmodel-operator-webhook.openmodel-system.svc", "127.0.0.1"], str(tmp_path / "tls"))
    assert files.cafile is not None
    assert (pathlib.Path(files.pkeyfile).stat().st_mode & 0o777) == 0o600
    cert = x509.load_pem_x509_certificate(pathlib.Path(files.certfile).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["openmodel-operator-webhook.openmodel-system.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pathlib.Path(files.cafile).read_bytes()))
    other = self_signed(["elsewhere"], str(tmp_path / "other"))
    with pytest.raises(InvalidSignature):  # another start's CA (same name, another key) does not verify it
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pathlib.Path(str(other.cafile)).read_bytes()))


def test_a_certificate_directory_without_the_key_says_what_to_mount(tmp_path: pathlib.Path) -> None:
    (tmp_path / "tls.crt").write_text("x")
    with pytest.raises(ValueError, match=r"tls\.key is missing; mount a kubernetes\.io/tls Secret"):
        given_files(str(tmp_path))


def test_webhooks_off_registers_nothing_and_says_validation_happens_at_reconcile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = kopf.OperatorRegistry()
    with caplog.at_level(logging.WARNING):
        webhooks.install(registry, OperatorSettings(), WebhookSettings(enabled=False), {}, {}, ())
    assert registry._webhooks.get_all_handlers() == []
    assert "admission webhooks are off" in caplog.text and "only when the operator reconciles" in caplog.text


def test_without_its_own_identity_the_guard_is_not_registered(caplog: pytest.LogCaptureFixture) -> None:
    registry = kopf.OperatorRegistry()
    kinds = (("apps", "v1", "deployments", "Deployment"),)
    with caplog.at_level(logging.WARNING):
        webhooks.install(registry, OperatorSettings(), WebhookSettings(operator_users=()), {}, {"m": "o"}, kinds)
    assert {h.id for h in registry._webhooks.get_all_handlers()} == {"policy", "openmodel"}
    assert "the children guard is off" in caplog.text


def test_a_shard_judges_only_its_namespaces_and_the_guard_follows_the_label_on_both_sides() -> None:
    built = shape(
        [{"name": "guard-deployments.openmodel.io"}, {"name": "openmodel.openmodel.io"}],
        {"app.kubernetes.io/managed-by": "openmodel-operator"},
        ["team-a"],
    )
    guard, model = built
    assert guard["objectSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "openmodel-operator"}}
    assert guard["timeoutSeconds"] < model["timeoutSeconds"]
    for webhook in built:
        (expr,) = webhook["namespaceSelector"]["matchExpressions"]
        assert expr == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}


async def test_admission_keeps_no_memory_per_object_in_kopf() -> None:
    """Kopf would remember every UPDATE/DELETE's object for good (its watch of children never frees them)."""
    from openmodel_operator.controller.webhook_registration import _without_memories

    asked: list[bool] = []

    class Memories:
        async def recall_memo(self, raw_body: object, *, memobase: object = None, ephemeral: bool = False) -> object:
            asked.append(ephemeral)
            return None

    async def serve(request: object, **kwargs: object) -> object:
        await kwargs["memories"].recall_memo({}, ephemeral=False)  # type: ignore[attr-defined]
        return "served"

    assert await _without_memories(serve)({}, memories=Memories()) == "served"
    assert asked == [True]
