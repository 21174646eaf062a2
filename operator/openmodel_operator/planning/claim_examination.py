"""The claim examination Job of a ``pvc://`` source: the only pod that reads a claim before it is decided.

Job ``<name>-examine-<hash of the nonce>`` runs ``openmodel report-claim`` on the claim's path, mounted read-only
(a read-only volume and a read-only mount), and POSTs what it found to the operator's report listener. It gets
nothing it could misuse: no API token (``automountServiceAccountToken: false``), no Secret, no environment from
the namespace, a non-root user, a read-only root filesystem, bounded CPU time (``activeDeadlineSeconds``),
memory and retries, and it goes away on its own (``ttlSecondsAfterFinished``). One Job per examination: the
nonce in its arguments binds the report to it, and a new examination is a new name (a Job's template is
immutable).

Pure: the reconciler creates what this returns; tests check it against the Kubernetes 1.28 schemas.
"""

from __future__ import annotations

import hashlib
from typing import Any

from openmodel_operator.planning import children

COMPONENT: children.Component = "examine"
ROOT_DIR = "/claim"  # where the claim's path is mounted in the Job
BACKOFF_LIMIT = 1  # one more attempt for a pod lost to its node; a refusal (exit 1) fails the Job at once
TTL_SECONDS = 3600  # a finished Job (and its log) stays an hour for inspection, then goes on its own


def job_name(ref: children.ModelRef, nonce: str) -> str:
    """``<name>-examine-<first 10 hex of sha256(nonce)>``: a new examination is a new Job."""
    return children.child_name(ref.name, f"-examine-{hashlib.sha256(nonce.encode()).hexdigest()[:10]}")


def examine_job(
    ref: children.ModelRef,
    uri: str,
    signature_path: str,
    nonce: str,
    report_url: str,
    settings: children.ChildSettings,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The Job that hashes the claim of ``uri`` and reports to ``report_url`` for the examination ``nonce``."""
    claim, path = children.pvc_source(uri)
    mount: dict[str, Any] = {"name": "claim", "mountPath": ROOT_DIR, "readOnly": True}
    if path:
        mount["subPath"] = path
    command = [
        "openmodel", "report-claim",
        "--root", ROOT_DIR,
        "--uri", uri,
        "--signature-path", signature_path,
        "--nonce", nonce,
        "--url", report_url,
    ]  # fmt: skip
    container = children._operator_container(
        "examine",
        command,
        [{"name": "HOME", "value": children.TMP_DIR}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
        [mount, {"name": "tmp", "mountPath": children.TMP_DIR}],
        settings,
    )
    pod_spec: dict[str, Any] = {
        **children._pod_common(settings),  # no API token, no Service links
        "restartPolicy": "Never",
        "securityContext": children._pod_security_context(children.NONROOT_ID),
        "containers": [container],
        "volumes": [
            {"name": "claim", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    labels = children.labels(ref, COMPONENT)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(ref, nonce),
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {children.SOURCE_ANNOTATION: uri},
            "ownerReferences": [children.owner_reference(ref)],
        },
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "examine", "operator": "In", "values": [1]},
                        "onPodConditions": [],
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
