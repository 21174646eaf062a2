"""Sign each new trust decision with the operator's key and keep it in the model's history ConfigMap.

The key is a Secret named by ``OPENMODEL_ATTESTATION_KEY_SECRET`` (``namespace/name``, key ``private.pem``):
read by name once per process (Secrets are never listed or watched), made once with a fresh ECDSA P-256 key
when absent (``public.pem`` beside it, for the admin to hand to auditors). Its content never reaches a log,
status or an Event: only its fingerprint does.

Only a *new* decision is written: the Statement without its time is compared with the decision key the
history's newest entry was made from (an annotation the watch shows), so a re-verification deciding the same
thing every 30 seconds writes nothing. A failure here never fails the pass: admitting or revoking a model
must not wait for its record; the next pass tries again (its decision is still not recorded).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from openmodel_operator import __version__
from openmodel_operator.api.openmodel import AttestationsRecord, Provenance
from openmodel_operator.controller.kube import Kube, KubeError
from openmodel_operator.evidence.attestation import AttestationError, decision_key, verification_summary
from openmodel_operator.planning import attestation_history as history
from openmodel_operator.planning import children
from openmodel_operator.signing.attestation import (
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    sign_statement,
    verify_attestation,
)
from openmodel_operator.signing.signature import fingerprint
from openmodel_operator.trust.policies import Policy

log = logging.getLogger(__name__)

PRIVATE_KEY = "private.pem"
PUBLIC_KEY = "public.pem"
KEY_RETRY_SECONDS = 60.0  # an unusable key Secret is read again this often, not every pass


@dataclasses.dataclass(frozen=True)
class OperatorKey:
    """The loaded signing key, its public PEM and fingerprint (what may be shown)."""

    private: ec.EllipticCurvePrivateKey = dataclasses.field(repr=False)
    public_pem: str
    fingerprint: str


class Attestor:
    """Signs decisions and keeps each model's bounded history."""

    def __init__(self, kube: Kube, secret: str, max_entries: int) -> None:
        self.kube = kube
        self.namespace, self.name = secret.split("/", 1)
        self.max_entries = max_entries
        self._key: OperatorKey | None = None
        self._failed_at: float | None = None

    async def key(self) -> OperatorKey | None:
        """The operator's key: read once, made once when the Secret is absent; None while it is unusable."""
        if self._key is not None:
            return self._key
        if self._failed_at is not None and time.monotonic() - self._failed_at < KEY_RETRY_SECONDS:
            return None
        where = f"Secret {self.namespace}/{self.name}"
        try:
            pem = await self._read()
            if pem is None:
                pem = generate_private_key_pem()
                secret = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "labels": {
                            "app.kubernetes.io/part-of": "openmodel",
                            "app.kubernetes.io/component": "attestation-key",
                        },
                    },
                    "data": {
                        PRIVATE_KEY: base64.b64encode(pem).decode(),
                        PUBLIC_KEY: base64.b64encode(public_key_pem(load_private_key(pem))).decode(),
                    },
                }
                if await self.kube.create_secret(secret):
                    log.info("attestation key created", extra={"secret": f"{self.namespace}/{self.name}"})
                else:  # another replica made it first: use that one
                    pem = await self._read()
                    if pem is None:
                        raise ValueError("it was created by someone else and has no private.pem")
            private = load_private_key(pem)
        except (KubeError, ValueError) as exc:
            self._failed_at = time.monotonic()
            log.warning(
                "attestation key unusable: decisions are not attested until it is fixed",
                extra={"secret": f"{self.namespace}/{self.name}", "error": f"{where}: {exc}"},
            )
            return None
        self._key = OperatorKey(private, public_key_pem(private).decode(), fingerprint(private.public_key()))
        log.info("attestation key loaded", extra={"fingerprint": self._key.fingerprint})
        return self._key

    async def _read(self) -> bytes | None:
        try:
            return (await self.kube.read_secret_key(self.namespace, self.name, PRIVATE_KEY)).encode()
        except KubeError as exc:
            if exc.status == 404 and "has no key" not in str(exc):
                return None
            raise

    async def record(
        self,
        ref: children.ModelRef,
        provenance: Provenance,
        trusted: bool,
        policies: Sequence[Policy],
        observed: Mapping[str, Any] | None,
        last: str | None,
    ) -> tuple[AttestationsRecord, str] | None:
        """Sign and keep the decision when it is new; returns (status record, decision key) when one was written.

        ``observed`` is the history ConfigMap as the watch shows it (metadata only), ``last`` the decision key
        this process wrote last (the watch may not show it yet).
        """
        key = await self.key()
        if key is None:
            return None
        # a policy's spec digest is recorded only for the generation that decided (status may predate an edit)
        current = {p.name: p for p in policies}
        digests = {
            r.name: current[r.name].spec_digest
            for r in provenance.policies or []
            if r.name in current and current[r.name].generation == r.generation
        }
        try:
            statement = verification_summary(
                provenance,
                trusted=trusted,
                namespace=ref.namespace,
                model=ref.name,
                spec_digests=digests,
                verifier_version=__version__,
            )
        except AttestationError as exc:
            log.info(
                "decision not attested", extra={"namespace": ref.namespace, "openmodel": ref.name, "error": str(exc)}
            )
            return None
        decision = decision_key(statement)
        annotations = ((observed or {}).get("metadata") or {}).get("annotations") or {}
        if decision in (last, annotations.get(history.DECISION_ANNOTATION)):
            return None
        name = history.configmap_name(ref)
        live = await self.kube.get("ConfigMap", ref.namespace, name)
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        if live is not None and (
            labels.get(children.NAME_LABEL) != children.label_value(ref.name)
            or labels.get(children.COMPONENT_LABEL) != history.COMPONENT
        ):
            log.warning(
                "decision not attested: the history ConfigMap's name is taken by another object; rename or delete it",
                extra={"namespace": ref.namespace, "openmodel": ref.name, "configmap": name},
            )
            return None
        entries = history.entries((live or {}).get("data"))
        verified_at = provenance.verified_at
        assert verified_at is not None  # verification_summary refused a decision without a time
        entry = history.entry_key(verified_at, trusted, statement["subject"][0]["digest"]["sha256"], entries)
        # The ConfigMap is in the tenant's namespace (made before the model, or edited while the children guard
        # was down or off): only entries this key signed, under their own names, for this model, are the
        # operator's; the rest never push its decisions out (history.bounded_own_first).
        own = {k: v for k, v in entries.items() if _signed_here(k, v, key, ref)}
        own[entry] = sign_statement(statement, key.private).decode()
        others = {k: v for k, v in entries.items() if k not in own}
        kept = history.bounded_own_first(own, entry, others, self.max_entries)
        await self.kube.apply(history.history_configmap(ref, kept, decision, key.fingerprint, key.public_pem))
        log.info(
            "decision attested",
            extra={"namespace": ref.namespace, "openmodel": ref.name, "entry": entry, "kept": len(kept)},
        )
        record = AttestationsRecord(config_map=name, count=len(kept), latest=entry, key_fingerprint=key.fingerprint)
        return record, decision


def _signed_here(entry: str, bundle: str, key: OperatorKey, ref: children.ModelRef) -> bool:
    """An entry of the history is the operator's: signed by its key, named as it names that decision, about this
    model (a few ECDSA verifications, only when a new decision is written)."""
    try:
        verified = verify_attestation(bundle.encode(), key.private.public_key())
    except AttestationError:
        return False
    return history.names_statement(entry, verified.statement, ref.namespace, ref.name)
