"""Which ModelTrustPolicies govern a namespace, and how a policy manifest becomes trust anchors.

Policies bind to namespaces, never to models. A namespace no policy selects falls under the built-in
default (signature required, OSI-approved licenses) so that nothing runs unchecked by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from openmodel_operator.api.common import API_VERSION, LabelSelector
from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec
from openmodel_operator.evidence.attestation import sha256_ref
from openmodel_operator.signing.signature import (
    KeylessIdentity,
    TrustAnchors,
    TrustedCA,
    TrustedKey,
    ca_bundle_problem,
    key_problem,
    trusted_root_problem,
)

BUILTIN_DEFAULT_NAME = "builtin-default"


class PolicyError(ValueError):
    """A policy manifest that cannot be used; the message names the field and the fix.

    ``detail`` is the message without the "where" prefix (file or object name), for a status that names
    the policy already.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclasses.dataclass(frozen=True)
class Policy:
    """A ModelTrustPolicy as the decision code sees it: name, generation and a validated spec.

    ``trusted_root_json`` is this policy's own Sigstore trusted_root.json (its ``trustedRoot``
    ConfigMap content, inlined by the operator or given with ``--trusted-root``); None means the
    public-good root shipped with the operator. It is never shared with another policy.
    """

    name: str
    spec: ModelTrustPolicySpec
    generation: int | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # metadata.uid: a policy deleted and created again under the same name is another policy (generation 1 again)
    uid: str | None = None
    trusted_root_json: bytes | None = dataclasses.field(default=None, repr=False)
    # Why the policy cannot be used (its manifest fails validation, a referenced ConfigMap is unreadable):
    # such a policy still governs its namespaces and fails every model there with PolicyInvalid.
    problem: str | None = None

    @property
    def enforced(self) -> bool:
        return self.spec.mode == "Enforce"

    @property
    def spec_digest(self) -> str:
        """``sha256:<hex>`` of the spec's canonical JSON: which content of the policy decided, recorded in
        attestations beside the generation (a policy deleted and made again restarts at generation 1)."""
        return sha256_ref(self.spec.model_dump(mode="json", by_alias=True, exclude_none=True))


BUILTIN_DEFAULT = Policy(
    name=BUILTIN_DEFAULT_NAME,
    spec=ModelTrustPolicySpec.model_validate(
        {"mode": "Enforce", "signature": {"required": True}, "licenses": {"allowOSIApproved": True}}
    ),
)


def policy_from_manifest(doc: Mapping[str, Any], origin: str = "policy") -> Policy:
    """Validate one ModelTrustPolicy manifest (as applied with kubectl) into a Policy."""
    if doc.get("kind") != "ModelTrustPolicy":
        raise PolicyError(f"{origin}: kind is {doc.get('kind')!r}; a policy file holds ModelTrustPolicy documents")
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise PolicyError(f"{origin}: apiVersion {doc.get('apiVersion')!r} is not served; use {API_VERSION}")
    metadata = doc.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise PolicyError(f"{origin}: metadata.name is required")
    try:
        spec = ModelTrustPolicySpec.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        detail = _first_error(exc)
        raise PolicyError(f"{origin} ModelTrustPolicy {name!r}: {detail}", detail) from None
    uid = metadata.get("uid")
    return Policy(
        name=name,
        spec=spec,
        generation=metadata.get("generation"),
        labels=metadata.get("labels") or {},
        uid=uid if isinstance(uid, str) else None,
    )


_MAX_SHOWN = 80


def _clip(value: Any) -> str:
    """repr() of a value (escapes controls and non-printables), clipped so a huge PEM cannot flood a message."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}... ({len(text)} characters)"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"spec.{where}: {err['msg']} (got {_clip(err.get('input'))})"


def invalid_policy(doc: Mapping[str, Any], message: str) -> Policy:
    """A policy the operator cannot use, kept so that it fails closed.

    A ModelTrustPolicy whose manifest does not validate (or whose references cannot be read) must not be
    "ignored, other policies decide": it still governs the namespaces it selects and makes every model
    there fail with PolicyInvalid. Its namespaceSelector is used when that part parses; otherwise the
    empty selector governs every namespace (failing closed on the whole cluster rather than on none).
    The spec is otherwise the defaults: ``decide`` evaluates nothing else of it.
    """
    raw_metadata = doc.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    name = metadata.get("name")
    raw_spec = doc.get("spec")
    raw_selector = raw_spec.get("namespaceSelector") if isinstance(raw_spec, Mapping) else None
    try:
        selector = LabelSelector.model_validate(raw_selector or {})
    except ValidationError:
        selector = LabelSelector()
    generation = metadata.get("generation")
    labels = metadata.get("labels")
    uid = metadata.get("uid")
    return Policy(
        name=name if isinstance(name, str) and name else "<unnamed>",
        spec=ModelTrustPolicySpec(namespace_selector=selector),
        generation=generation if isinstance(generation, int) and not isinstance(generation, bool) else None,
        labels=labels if isinstance(labels, Mapping) else {},
        problem=message,
        uid=uid if isinstance(uid, str) else None,
    )


def without_references(policy: Policy) -> Policy:
    """The policy with its ConfigMap references left out: what can be checked without reading the cluster."""
    rules = policy.spec.signature
    if not (
        rules.trusted_root is not None
        or any(k.config_map_ref for k in rules.keys or [])
        or any(c.config_map_ref for c in rules.certificates or [])
    ):
        return policy
    spec = policy.spec.model_copy(deep=True)
    spec.signature.keys = [k for k in spec.signature.keys or [] if k.config_map_ref is None]
    spec.signature.certificates = [c for c in spec.signature.certificates or [] if c.config_map_ref is None]
    spec.signature.trusted_root = None
    return dataclasses.replace(policy, spec=spec)


def usable_policy(doc: Mapping[str, Any], origin: str = "policy") -> Policy:
    """:func:`policy_from_manifest`, or the :func:`invalid_policy` that fails closed when it raises."""
    try:
        return policy_from_manifest(doc, origin)
    except PolicyError as exc:
        return invalid_policy(doc, exc.detail)


def load_policy_file(text: str, origin: str) -> list[Policy]:
    """Every ModelTrustPolicy in a YAML file of one or several documents."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML ({exc})") from None
    if not docs:
        raise PolicyError(f"{origin}: no ModelTrustPolicy documents found")
    return [policy_from_manifest(doc, origin) for doc in docs]


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches every namespace."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = req.values or []
        if req.operator == "In" and (not present or labels[req.key] not in values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def governing_policies(policies: Iterable[Policy], namespace_labels: Mapping[str, str]) -> list[Policy]:
    """The policies that govern a namespace, sorted by name; the built-in default when none selects it."""
    selected = sorted(
        (p for p in policies if selector_matches(p.spec.namespace_selector, namespace_labels)), key=lambda p: p.name
    )
    return selected or [BUILTIN_DEFAULT]


def trust_anchors(policy: Policy) -> TrustAnchors:
    """The keys, CAs, keyless identities and keyless trusted root of one policy, checked for use.

    ``configMapRef`` entries (and the ``trustedRoot`` ConfigMap) must have been inlined by the caller
    (the operator reads the ConfigMaps); a CLI user gets a clear error instead. An anchor that cannot
    be used — a PEM that does not parse, a key model-signing cannot sign with, a CA bundle holding a
    certificate that is not a CA, a trusted root that is not one — raises PolicyError: the policy
    fails closed instead of silently trusting fewer signers than it names.
    """
    where = f"ModelTrustPolicy {policy.name!r}"
    rules = policy.spec.signature
    keys: list[TrustedKey] = []
    for key in rules.keys or []:
        field = f"spec.signature.keys[{key.name!r}]"
        if key.public_key is None:
            raise PolicyError(
                f"{where}: {field} uses configMapRef, which only the operator can read; inline the PEM as publicKey "
                "to use this policy from the command line"
            )
        if (problem := key_problem(key.public_key)) is not None:
            raise PolicyError(
                f"{where}: {field}.publicKey (or its ConfigMap) is unusable: {problem}; put the signer's EC "
                "P-256/384/521 public key in PEM there (`openssl ec -pubout`)"
            )
        keys.append(TrustedKey(name=key.name, public_key_pem=key.public_key.encode()))
    cas: list[TrustedCA] = []
    for ca in rules.certificates or []:
        field = f"spec.signature.certificates[{ca.name!r}]"
        if ca.ca_bundle is None:
            raise PolicyError(
                f"{where}: {field} uses configMapRef, which only the operator can read; inline the PEM as caBundle "
                "to use this policy from the command line"
            )
        if (problem := ca_bundle_problem(ca.ca_bundle)) is not None:
            raise PolicyError(
                f"{where}: {field}.caBundle (or its ConfigMap) is unusable: {problem}; put only the issuing root CA "
                "and its intermediate CA certificates in PEM there"
            )
        cas.append(TrustedCA(name=ca.name, ca_bundle_pem=ca.ca_bundle.encode(), identities=tuple(ca.identities or ())))
    keyless = [KeylessIdentity(issuer=k.issuer, subject=k.subject) for k in rules.keyless or []]
    root_ref = rules.trusted_root
    root_name: str | None = None
    if policy.trusted_root_json is not None:
        if (problem := trusted_root_problem(policy.trusted_root_json)) is not None:
            raise PolicyError(
                f"{where}: spec.signature.trustedRoot is unusable: {problem}; point it at the trusted_root.json of "
                "the Sigstore instance that issues the signers' certificates"
            )
        short = hashlib.sha256(policy.trusted_root_json).hexdigest()[:12]
        root_name = (
            f"trustedRoot {root_ref.namespace}/{root_ref.name} (sha256:{short})"
            if root_ref is not None
            else f"trusted root sha256:{short}"
        )
    elif root_ref is not None:
        raise PolicyError(
            f"{where}: spec.signature.trustedRoot names ConfigMap {root_ref.namespace}/{root_ref.name}, which only "
            "the operator can read; give the trusted_root.json with --trusted-root to use this policy from the "
            "command line"
        )
    return TrustAnchors(
        keys=tuple(keys),
        cas=tuple(cas),
        keyless=tuple(keyless),
        trusted_root_json=policy.trusted_root_json,
        trusted_root_name=root_name,
    )
