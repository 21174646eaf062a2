"""What validating admission decides: the operator's own refusals, given back at ``kubectl apply`` time.

Why a module of its own, and why it decides nothing new: the webhook must never disagree with the
reconciler. Every refusal here is one the operator would make later anyway, computed by the same functions:

* a ModelTrustPolicy: :func:`~openmodel_operator.trust.policies.usable_policy` (the same pydantic model, so
  a pattern Python's ``re`` reads differently from the apiserver's RE2 is caught) and
  :func:`~openmodel_operator.trust.decision.policy_violations` (PEMs that do not parse or are no usable
  key/CA bundle, a trusted root that is not one): the reasons behind ``Accepted=False``;
* an OpenModel: :func:`~openmodel_operator.trust.precheck.pre_network_violations`, the decision the
  reconciler takes before it contacts any source (policies, endpoint, source patterns, serving), for the
  base model and for each adapter as :func:`~openmodel_operator.planning.adapters.adapter_model_spec`
  makes it; under :func:`~openmodel_operator.trust.policies.governing_policies` of the namespace.

What only the reconciler can decide (it needs the source): signatures, the files and their digests,
licenses and openness from the model card, the digest pin. Admission says nothing about those: an admitted
OpenModel can still be Rejected after resolving.

A child guard (:func:`review_child_change`) is here too: who may change the objects the operator owns; and
the serving pods' guard (:func:`review_pod_change`, :func:`review_replicaset_change`): the model's Service
selects pods by labels, so only pods its own Deployment makes may carry them (threat model, row 28).
Pure: the shell (controller/webhooks.py) gathers the inputs from Kopf's indexes and the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.evidence.records import Violation
from openmodel_operator.planning.adapters import adapter_model_spec
from openmodel_operator.planning.children import APP_LABELS, COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY
from openmodel_operator.planning.model_state import spec_problem
from openmodel_operator.trust.decision import policy_violations
from openmodel_operator.trust.policies import Policy, governing_policies, usable_policy, without_references
from openmodel_operator.trust.precheck import pre_network_violations

MAX_WARNINGS = 8  # the apiserver truncates long warning lists; the first ones carry the point
MAX_WARNING_CHARS = 240  # kubectl prints each on one line; the apiserver caps a warning's length too


@dataclasses.dataclass(frozen=True)
class Review:
    """The answer to one admission request: allowed or not (``message``, HTTP ``code``), and warnings."""

    allowed: bool
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = ()


def _warning(text: str) -> str:
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 3] + "..."


# ------------------------------------------------------------------ ModelTrustPolicy


def review_policy(doc: Mapping[str, Any], resolved: Policy | None = None) -> Review:
    """Refuse a policy the operator would mark ``Accepted=False``; ``resolved`` is the same policy with its
    ConfigMap references read by the operator (None: not read, e.g. no references).

    A referenced ConfigMap that cannot be read is a warning, not a refusal: a GitOps tool may apply the
    policy before the ConfigMap, and the policy fails closed until it exists (its models fail with
    PolicyInvalid). Content that is there and unusable is refused, as an inline PEM is.
    """
    meta = doc.get("metadata") or {}
    name = str(meta.get("name") or "")
    policy = usable_policy(doc, origin=f"ModelTrustPolicy {name!r}")
    if policy.problem is not None:
        return Review(
            False,
            f"ModelTrustPolicy {name!r} is invalid: {policy.problem}; fix that field (the operator would mark the "
            "policy Accepted=False InvalidSpec and fail every OpenModel in the namespaces it selects)",
            422,
        )
    invalid = policy_violations(without_references(policy))
    if invalid:
        return Review(False, _unusable(invalid[0]), 422)
    warnings: list[str] = []
    if resolved is not None:
        if resolved.problem is not None:
            warnings.append(
                _warning(
                    f"ModelTrustPolicy {name!r} fails every OpenModel it governs (PolicyInvalid) until this is "
                    f"fixed: {resolved.problem}"
                )
            )
        elif invalid := policy_violations(resolved):
            return Review(False, _unusable(invalid[0]), 422)
    return Review(True, warnings=tuple(warnings))


def _unusable(violation: Violation) -> str:
    """The message of the policy's ``Accepted=False InvalidAnchors`` condition (it names the field and the fix)."""
    return f"{violation.message} (the operator would mark it Accepted=False InvalidAnchors)"


# ------------------------------------------------------------------ OpenModel


def review_openmodel(
    raw_spec: Any,
    all_policies: Iterable[Policy],
    namespace_labels: Mapping[str, str],
    runtime_image: str,
    default_endpoint: str | None = None,
) -> Review:
    """Refuse an OpenModel that an Enforce policy of its namespace refuses before the network; Audit
    violations come back as warnings. ``all_policies`` have their ConfigMap references read (as the
    reconciler's are): a policy that is unusable refuses here as it fails the model there."""
    try:
        spec = OpenModelSpec.model_validate(raw_spec or {})
    except ValidationError as exc:
        return Review(False, spec_problem(exc), 422)
    policies = governing_policies(all_policies, namespace_labels)
    found: list[tuple[str, Violation]] = [
        ("", v) for v in pre_network_violations(policies, spec, runtime_image, default_endpoint)
    ]
    for adapter in spec.adapters or []:
        own = adapter_model_spec(spec, adapter)
        where = f"spec.adapters[{adapter.name!r}]: "
        found += [(where, v) for v in pre_network_violations(policies, own, runtime_image, default_endpoint)]
    found = _unique(found)
    enforced = [(where, v) for where, v in found if v.enforced]
    warnings = tuple(
        _warning(f"{where}ModelTrustPolicy {v.policy!r} (Audit) would refuse this: {v.reason.value}: {v.message}")
        for where, v in found
        if not v.enforced
    )[:MAX_WARNINGS]
    if enforced:
        where, first = enforced[0]
        more = f" (and {len(enforced) - 1} more)" if len(enforced) > 1 else ""
        return Review(
            False,
            f"{where}ModelTrustPolicy {first.policy!r} refuses this OpenModel: {first.reason.value}: "
            f"{first.message}{more}",
            403,
            warnings,
        )
    return Review(True, warnings=warnings)


def _unique(found: Sequence[tuple[str, Violation]]) -> list[tuple[str, Violation]]:
    """Each violation once (a policy problem is found for the base model and for every adapter alike)."""
    seen: set[tuple[str, str, str]] = set()
    kept: list[tuple[str, Violation]] = []
    for where, violation in found:
        key = (violation.policy, violation.reason.value, violation.message)
        if key not in seen:
            seen.add(key)
            kept.append((where, violation))
    return kept


# ------------------------------------------------------------------ the children guard

# Who else may write a managed child, and why:
# - the namespace controller deletes everything in a namespace being deleted;
# - the garbage collector deletes children whose owner is gone and updates ownerReferences/finalizers;
# - the Deployment/Job/ReplicaSet controllers write status (another resource path, never seen here), but
#   also adopt/orphan and set finalizers on the object itself (e.g. the Job tracking finalizers are on pods,
#   the orphan finalizer on the object).
SYSTEM_WRITERS = frozenset(
    {
        "system:serviceaccount:kube-system:namespace-controller",
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:kube-system:job-controller",
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:persistent-volume-binder",
        "system:serviceaccount:kube-system:pvc-protection-controller",
        # storage.mode PerPod: the pod's generic ephemeral volume is a PVC this controller creates from the
        # operator's labelled template (refused, no serving pod would ever start)
        "system:serviceaccount:kube-system:ephemeral-volume-controller",
        # the release Job of a shared claim has ttlSecondsAfterFinished: this controller deletes it
        "system:serviceaccount:kube-system:ttl-after-finished-controller",
        "system:kube-controller-manager",
    }
)
BREAK_GLASS_GROUP = "system:masters"  # cluster admins: a documented way around the guard (docs/install.md)


def review_child_change(
    username: str,
    groups: Collection[str],
    operation: str,
    kind: str,
    name: str,
    operator_users: Collection[str],
    break_glass_groups: Collection[str] = (BREAK_GLASS_GROUP,),
) -> Review:
    """Only the operator (and the cluster's own controllers, and break-glass admins) may create, change or
    delete an object labelled as the operator's: a tenant's edit of a serving Deployment (another image,
    other args, another volume) is refused at the API instead of being repaired a few seconds later, after
    it may have served something unverified."""
    if username in operator_users or username in SYSTEM_WRITERS:
        return Review(True)
    glass = _break_glass(
        username,
        groups,
        f"{kind} {name} is managed",
        operation,
        break_glass_groups,
        ", and the operator reverts drift it sees",
    )
    if glass is not None:
        return glass
    verb = {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}.get(operation, operation.lower())
    return Review(
        False,
        f"{kind} {name} is managed by openmodel-operator (label app.kubernetes.io/managed-by=openmodel-operator): "
        f"only the operator may {verb} it, not {username}. Change the OpenModel instead (its spec.serving and "
        f"spec.storage decide this object); a cluster admin in {', '.join(sorted(break_glass_groups))} may "
        "override",
        403,
    )


# ------------------------------------------------------------------ the serving pods' guard

# The Service of a model selects ``app.kubernetes.io/name=openmodel``, its instance and ``component=server``:
# labels any pod can carry. A pod with them may only come from the model's own Deployment, through the chain
# the cluster's controllers keep: the operator writes the Deployment (guarded), the Deployment controller
# makes a ReplicaSet of it (guarded here: its Deployment must be the operator's), the ReplicaSet controller
# makes the pods (guarded here: their ReplicaSet must be one of those). Who makes each link is the request's
# authenticated user, which a tenant cannot forge; the ownerReferences a controller writes are the truth.
POD_SELECTOR = APP_LABELS  # every pod of the operator's children carries it
SERVER_COMPONENT = "server"
POD_MAKERS = frozenset({"system:serviceaccount:kube-system:replicaset-controller", "system:kube-controller-manager"})
REPLICASET_MAKERS = frozenset(
    {"system:serviceaccount:kube-system:deployment-controller", "system:kube-controller-manager"}
)


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def openmodel_pod(obj: Mapping[str, Any] | None) -> bool:
    """A pod the guard judges: it carries the label every pod of the operator's children has."""
    labels = _labels(obj)
    return all(labels.get(key) == value for key, value in POD_SELECTOR.items())


def serving_pod(obj: Mapping[str, Any] | None) -> bool:
    """A pod some model's Service would send traffic to (and clients' API keys with it)."""
    return openmodel_pod(obj) and _labels(obj).get(COMPONENT_LABEL) == SERVER_COMPONENT


def controller_ref(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ownerReference with ``controller: true`` (at most one, the apiserver says)."""
    for ref in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def _managed(obj: Mapping[str, Any] | None) -> bool:
    labels = _labels(obj)
    return all(labels.get(key) == value for key, value in MANAGED_BY.items())


def _break_glass(
    username: str,
    groups: Collection[str],
    what: str,
    operation: str,
    break_glass_groups: Collection[str],
    after: str = "",
) -> Review | None:
    """A cluster admin's way around a guard: allowed, with a warning naming what was overridden; None for others."""
    if not any(group in break_glass_groups for group in groups):
        return None
    return Review(
        True,
        warnings=(
            _warning(
                f"{what} by openmodel-operator: this {operation} by {username} "
                f"({'/'.join(sorted(break_glass_groups))}) is allowed{after}"
            ),
        ),
    )


def _refused(message: str) -> Review:
    return Review(False, message, 403)


def _without_bookkeeping(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an edit must leave alone: everything but annotations and the server's bookkeeping."""
    view = dict(obj or {})
    meta = dict(view.get("metadata") or {})
    for key in ("annotations", "resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    view["metadata"] = meta
    view.pop("status", None)
    return view


def review_pod_change(
    username: str,
    groups: Collection[str],
    operation: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    owner: Mapping[str, Any] | None,
    operator_users: Collection[str],
    break_glass_groups: Collection[str] = (BREAK_GLASS_GROUP,),
) -> Review:
    """A pod with the serving labels is admitted only from the ReplicaSet controller, for a ReplicaSet that is
    the operator's (``owner``: the ReplicaSet its controller reference names, as the API server has it, or
    None); a pod the operator's children made is not edited by anyone else (a pod's images are mutable, so a
    ``kubectl set image`` or an ephemeral debug container would run other code where verified code ran)."""
    pod = new if new is not None else old
    name = str(((pod or {}).get("metadata") or {}).get("name") or "")
    what = f"Pod {name}"
    if not (openmodel_pod(old) or openmodel_pod(new)):
        return Review(True)
    glass = _break_glass(username, groups, f"{what} is guarded", operation, break_glass_groups)
    if glass is not None:
        return glass
    if operation == "CREATE":
        if not serving_pod(new):
            return Review(True)  # a Job's pod: its Job is guarded, and nothing routes traffic to it
        instance = _labels(new).get(INSTANCE_LABEL)
        ref = controller_ref(new)
        why = (
            f"{what} carries the labels the Service of OpenModel {instance!r} selects "
            f"(app.kubernetes.io/name=openmodel, app.kubernetes.io/component=server): only the model's own "
            f"Deployment may make such pods"
        )
        if username not in POD_MAKERS:
            return _refused(f"{why}, not {username}. Use other labels for your own pods")
        if ref is None or ref.get("kind") != "ReplicaSet" or ref.get("apiVersion") != "apps/v1":
            return _refused(f"{why}; this one is not made for a ReplicaSet")
        if (
            owner is None
            or ((owner.get("metadata") or {}).get("uid")) != ref.get("uid")
            or not _managed(owner)
            or _labels(owner).get(INSTANCE_LABEL) != instance
            or _labels(owner).get(COMPONENT_LABEL) != SERVER_COMPONENT
        ):
            return _refused(f"{why}; its ReplicaSet {ref.get('name')!r} is not one of the operator's")
        return Review(True)
    if operation == "DELETE" or username in operator_users or username in SYSTEM_WRITERS:
        return Review(True)  # deleting a pod only restarts it; the controllers adopt, orphan, clean up
    if _without_bookkeeping(old) == _without_bookkeeping(new):
        return Review(True)  # annotations only
    return _refused(
        f"{what} runs a model for openmodel-operator: only the cluster's controllers may change it, not "
        f"{username} (its labels, images and containers are what was verified). Change the OpenModel instead"
    )


def replicaset_owner_needed(
    username: str, operation: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> bool:
    """Whether a write of the Deployment controller is judged by its Deployment: a new ReplicaSet, one whose
    labels or pod template change (what the pods it makes would be), or one it adopts (a controller reference
    set where there was none or another: a tenant's Deployment whose selector and template match an orphaned
    ReplicaSet of the operator's would take it over and scale it; dropping the reference stays free, the
    garbage collector orphans that way)."""
    if username not in REPLICASET_MAKERS or operation not in ("CREATE", "UPDATE"):
        return False
    if operation == "CREATE":
        return True
    adopted = controller_ref(new)
    if adopted is not None and (controller_ref(old) or {}).get("uid") != adopted.get("uid"):
        return True
    template = ((old or {}).get("spec") or {}).get("template"), ((new or {}).get("spec") or {}).get("template")
    return _labels(old) != _labels(new) or template[0] != template[1]


def review_replicaset_change(
    username: str,
    groups: Collection[str],
    operation: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    operator_users: Collection[str],
    break_glass_groups: Collection[str] = (BREAK_GLASS_GROUP,),
) -> Review:
    """A ReplicaSet labelled as the operator's is written only by the Deployment controller for a Deployment
    that is the operator's (``deployment``: the one its controller reference names, or None); anyone else is
    refused as for every managed child. A tenant's Deployment whose pod template copies the operator's labels
    gets no ReplicaSet, so no pods."""
    obj = new if new is not None else old
    name = str(((obj or {}).get("metadata") or {}).get("name") or "")
    if username not in REPLICASET_MAKERS or operation not in ("CREATE", "UPDATE"):
        return review_child_change(username, groups, operation, "ReplicaSet", name, operator_users, break_glass_groups)
    if not replicaset_owner_needed(username, operation, old, new):
        return Review(True)  # scaling, the revision annotations, adoption: the pods it makes stay the same
    ref = controller_ref(new)
    if (
        ref is not None
        and ref.get("kind") == "Deployment"
        and deployment is not None
        and (deployment.get("metadata") or {}).get("uid") == ref.get("uid")
        and _managed(deployment)
    ):
        return Review(True)
    owner = ref.get("name") if ref is not None else None
    return _refused(
        f"ReplicaSet {name} carries openmodel-operator's labels, but its Deployment {owner!r} is not the "
        "operator's: only an OpenModel's own Deployment may make pods with them. Use other labels in your "
        "Deployment's pod template"
    )


def review_scale_change(
    username: str,
    groups: Collection[str],
    kind: str,
    name: str,
    target: Mapping[str, Any] | None,
    operator_users: Collection[str],
    break_glass_groups: Collection[str] = (BREAK_GLASS_GROUP,),
) -> Review:
    """``kubectl scale`` of a Deployment or ReplicaSet (its ``/scale`` subresource; ``target``: the object as the
    API server has it, None when absent). The operator's own are scaled only by the operator: the rest of the
    chain trusts their replica counts, so a tenant scaling a model the operator stopped (revoked, rejected, its
    Deployment kept at zero for forensics) or an old ReplicaSet (a previous revision) would run it again with
    pods the serving pods' guard admits. Nobody in the cluster's controllers scales them through ``/scale``
    (the Deployment controller writes the ReplicaSet itself); an HPA acts for whoever made it."""
    if not _managed(target):
        return Review(True)  # a tenant's own Deployment or ReplicaSet, or none at all
    if username in operator_users:
        return Review(True)
    glass = _break_glass(username, groups, f"{kind} {name} is guarded", "scale", break_glass_groups)
    if glass is not None:
        return glass
    return _refused(
        f"{kind} {name} is managed by openmodel-operator (label app.kubernetes.io/managed-by=openmodel-operator): "
        f"only the operator may scale it, not {username}. Change spec.serving.replicas of the OpenModel instead "
        f"(a model that is not trusted is kept at zero); a cluster admin in {', '.join(sorted(break_glass_groups))} "
        "may override"
    )
