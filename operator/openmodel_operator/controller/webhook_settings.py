"""Admission webhook settings, from ``OPENMODEL_WEBHOOK*`` variables (``openmodel run`` flags win).

Why apart from ``OperatorSettings``: the webhooks are optional (the operator decides everything again at
reconcile), and a process built without them (tests, ``build_registry`` callers) must not open a port.

How the API server reaches the webhook (``docs/install.md``, "Admission webhooks"):

* ``service`` (``namespace/name[:port]``): in a cluster with nodes, through the operator's Service;
* ``url_host``: by URL (``https://<url_host>:<port>/``): a control-plane-only cluster, or an operator run
  outside the cluster on a host the API server reaches (the only way without Service routing);
* neither: by URL on the listening address (``127.0.0.1`` for ``0.0.0.0``), for an API server on this host.

TLS: ``cert_dir`` with ``tls.crt``/``tls.key`` (and ``ca.crt``), as cert-manager writes a Secret, re-read when
it changes; without it the operator makes a self-signed CA and certificate at start (``webhook_tls``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping

WEBHOOK_MODES = ("on", "off")
_ALIASES = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}
DEFAULT_CONFIGURATION = "openmodel.io"  # the ValidatingWebhookConfiguration the operator keeps up to date
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def webhook_mode(value: str) -> str:
    mode = value.strip().lower()
    return _ALIASES.get(mode, mode)


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """Where the webhook listens, how the API server reaches it, its certificate, and who the operator is."""

    enabled: bool = True
    address: str = "127.0.0.1"  # 0.0.0.0 in a pod (the Service routes to the pod IP)
    port: int = 9443
    url_host: str | None = None
    service: str | None = None  # "namespace/name[:port]"
    cert_dir: str | None = None
    configuration: str = DEFAULT_CONFIGURATION
    # The users whose writes to managed children the guard allows (the operator's own identity); empty: the
    # guard is off, since refusing the operator's own writes would stop it serving anything.
    operator_users: tuple[str, ...] = ()
    guard: bool = True

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(
                f"webhook address {self.address!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0)"
            ) from None
        if not 0 < self.port < 65536:
            raise ValueError(f"webhook port {self.port} is not a TCP port (1-65535)")
        if self.url_host and self.service:
            raise ValueError(
                f"webhook URL host {self.url_host!r} and Service {self.service!r} are both set: the API server reaches "
                "the webhook one way; unset OPENMODEL_WEBHOOK_URL_HOST or OPENMODEL_WEBHOOK_SERVICE"
            )
        if self.service is not None:
            self.service_ref()  # raises on a malformed value

    def service_ref(self) -> tuple[str, str, int]:
        """(namespace, name, port) of ``service``."""
        text = self.service or ""
        ref, _, port = text.partition(":")
        namespace, _, name = ref.partition("/")
        if not namespace or not name or (port and not port.isdigit()):
            raise ValueError(
                f"webhook Service {text!r} is not namespace/name[:port], "
                "e.g. openmodel-system/openmodel-operator-webhook:443"
            )
        return namespace, name, int(port or 443)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        base = cls()
        mode = webhook_mode(env.get("OPENMODEL_WEBHOOKS") or "on")
        if mode not in WEBHOOK_MODES:
            raise ValueError(f"OPENMODEL_WEBHOOKS={mode!r} is not one of {', '.join(WEBHOOK_MODES)}")
        port_text = env.get("OPENMODEL_WEBHOOK_PORT") or str(base.port)
        if not port_text.isdigit():
            raise ValueError(f"OPENMODEL_WEBHOOK_PORT={port_text!r} is not a port number")
        guard = webhook_mode(env.get("OPENMODEL_CHILD_GUARD") or "on")
        if guard not in WEBHOOK_MODES:
            raise ValueError(f"OPENMODEL_CHILD_GUARD={guard!r} is not one of {', '.join(WEBHOOK_MODES)}")
        return cls(
            enabled=mode == "on",
            address=env.get("OPENMODEL_WEBHOOK_ADDRESS") or base.address,
            port=int(port_text),
            url_host=env.get("OPENMODEL_WEBHOOK_URL_HOST") or None,
            service=env.get("OPENMODEL_WEBHOOK_SERVICE") or None,
            cert_dir=env.get("OPENMODEL_WEBHOOK_CERT_DIR") or None,
            configuration=env.get("OPENMODEL_WEBHOOK_CONFIGURATION") or base.configuration,
            operator_users=operator_users(env),
            guard=guard == "on",
        )


def operator_users(env: Mapping[str, str], namespace_file: str = SERVICE_ACCOUNT_NAMESPACE_FILE) -> tuple[str, ...]:
    """The operator's own identity: ``OPENMODEL_OPERATOR_USER`` (comma-separated), else its ServiceAccount
    (``system:serviceaccount:<ns>:<sa>``) from ``OPENMODEL_SERVICE_ACCOUNT`` (the manifests set it from the pod
    spec) and the pod's namespace (``OPENMODEL_POD_NAMESPACE`` or the mounted token's namespace file)."""
    explicit = tuple(u.strip() for u in (env.get("OPENMODEL_OPERATOR_USER") or "").split(",") if u.strip())
    if explicit:
        return explicit
    account = (env.get("OPENMODEL_SERVICE_ACCOUNT") or "").strip()
    namespace = (env.get("OPENMODEL_POD_NAMESPACE") or "").strip()
    if account and not namespace:
        try:
            with open(namespace_file) as handle:
                namespace = handle.read().strip()
        except OSError:
            namespace = ""
    return (f"system:serviceaccount:{namespace}:{account}",) if account and namespace else ()
