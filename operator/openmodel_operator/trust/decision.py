"""The trust decision: (policies, evidence) -> verdict. Pure: no network, no cluster, no clock.

Every Enforce policy that governs the model must pass; Audit policies only record. The trust tier
says how the pinned content is tied to someone who vouches for it: Signed (a trusted signature
covers exactly the pinned files), Pinned (``spec.source.digest`` equals the resolved manifest
digest) or Unverified.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Iterable, Sequence

from openmodel_operator.api.openmodel import ServingSpec
from openmodel_operator.api.trustpolicy import ORIGIN_PATTERN
from openmodel_operator.api.vocabulary import TrustTier
from openmodel_operator.evidence.manifest import compare_manifest, manifest_digest, manifest_files
from openmodel_operator.evidence.records import (
    FileMismatch,
    OpennessEvidence,
    Reason,
    ResolvedSource,
    SignatureEvidence,
    SignatureFailure,
    Violation,
)
from openmodel_operator.signing.signature import verify_bundle
from openmodel_operator.trust.licenses import evaluate_license
from openmodel_operator.trust.openness import DECLARATION_FILE, assess_files, evaluate_openness
from openmodel_operator.trust.policies import BUILTIN_DEFAULT, BUILTIN_DEFAULT_NAME, Policy, PolicyError, trust_anchors

PIN_POLICY = "spec.source.digest"
_MAX_LISTED_FILES = 5
README_FILE = "README.md"
# the files whose content is evidence (license, openness), read only where covered
EVIDENCE_FILES: tuple[str, ...] = (README_FILE, DECLARATION_FILE)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Everything known about a model before its weights are pulled.

    The model card and the openness declaration travel as raw bytes (``source.readme``,
    ``source.openness_bytes``); ``decide`` reads them only where a policy's verified signature or
    the matched pin covers them, so endpoint metadata or unsigned files never become evidence.
    """

    source: ResolvedSource
    bundle: bytes | None  # the signature bundle, None when the model is unsigned
    signature_path: str | None  # the bundle's path in the repo (excluded from the manifest), None if external
    pinned_digest: str | None = None  # spec.source.digest

    @property
    def manifest_digest(self) -> str:
        return manifest_digest(self.source.files, self.signature_path)

    @property
    def readme(self) -> bytes | None:
        """The raw README.md bytes read at resolution (not yet checked against anything)."""
        return self.source.readme

    @property
    def openness_bytes(self) -> bytes | None:
        """The raw openness.yaml bytes read at resolution (not yet checked against anything)."""
        return self.source.openness_bytes

    def evidence_bytes(self) -> dict[str, bytes]:
        """Evidence files whose bytes hash to the sha256 the resolved manifest lists for them.

        Only these can be covered: a pin or a signature vouches for the listed digest, and bytes
        that do not match it (changed after hashing, cut short, or served differently) are not
        the bytes vouched for.
        """
        listed = {f.path: f.sha256.lower() for f in manifest_files(self.source.files, self.signature_path)}
        found: dict[str, bytes] = {}
        for path, data in ((README_FILE, self.readme), (DECLARATION_FILE, self.openness_bytes)):
            if data is not None and path in listed and hashlib.sha256(data).hexdigest() == listed[path]:
                found[path] = data
        return found


@dataclasses.dataclass(frozen=True)
class SignatureCheck:
    """What one policy's trust anchors made of the bundle."""

    evidence: SignatureEvidence | None
    failure: SignatureFailure | None
    mismatches: tuple[FileMismatch, ...] = ()

    @property
    def covers_content(self) -> bool:
        return self.evidence is not None and not self.mismatches


@dataclasses.dataclass(frozen=True)
class PolicyOutcome:
    """One policy's verdict on the model."""

    name: str
    generation: int | None
    mode: str
    violations: tuple[Violation, ...]
    anchor: str | None = None  # this policy's anchor that verified the bundle covering the content, if any

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The decision with machine-readable reasons, human messages and the trust tier."""

    trusted: bool
    tier: TrustTier
    manifest_digest: str
    outcomes: tuple[PolicyOutcome, ...]
    violations: tuple[Violation, ...]
    signature: SignatureEvidence | None
    signature_failure: SignatureFailure | None
    mismatches: tuple[FileMismatch, ...]
    # license and openness as the best covering policy reads them (the one covering most evidence
    # files, the first on a tie), else from the pin alone, else from nothing (license unknown)
    openness: OpennessEvidence
    evidence_files: tuple[str, ...] = ()  # the evidence files ``openness`` was read from

    @property
    def enforced_violations(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforced)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Distinct reason codes, enforced ones first."""
        ordered = [v.reason for v in self.enforced_violations] + [v.reason for v in self.violations]
        return tuple(dict.fromkeys(ordered))


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``: ``*`` any run of characters (``/`` included), ``?`` one character.

    Every other character is literal: there are no ``[...]`` classes (the policy schema refuses ``[`` and
    ``]`` in globs, so a glob never reads differently to the matcher than to its author, as fnmatch would).
    Iterative, with backtracking only to the last ``*``: at most len(pattern) * len(text) steps, both of
    which the schemas bound (512 characters), whatever the input.
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _matches_any(globs: Iterable[str], value: str) -> str | None:
    """The first glob matching ``value`` case-insensitively (both sides casefolded), else None."""
    folded = value.casefold()
    return next((g for g in globs if glob_match(g.casefold(), folded)), None)


def source_allowed(policy: Policy, uri: str) -> Violation | None:
    """Glob match of the source URI against the policy's allow and deny lists (deny wins).

    Matching is case-insensitive (the Hub treats ``IBM-Granite/x`` and ``ibm-granite/x`` as one repository,
    so a case change must neither escape a deny nor miss an allow). A local directory (``file://``, CLI only)
    has no origin to judge: source rules govern hf:// and pvc://.
    """
    if uri.startswith("file://"):
        return None
    rules = policy.spec.sources
    denied = _matches_any(rules.deny or [], uri)
    if denied is not None:
        return Violation(
            Reason.SOURCE_NOT_ALLOWED,
            f"source {uri} matches spec.sources.deny pattern {denied!r} of ModelTrustPolicy {policy.name!r}",
            policy.name,
            policy.enforced,
        )
    if _matches_any(rules.allow, uri) is None:
        return Violation(
            Reason.SOURCE_NOT_ALLOWED,
            f"source {uri} matches none of spec.sources.allow {rules.allow} of ModelTrustPolicy {policy.name!r}; "
            "use an allowed source or ask the policy owner to add it",
            policy.name,
            policy.enforced,
        )
    return None


# ---------------------------------------------------------------- endpoints

DEFAULT_ENDPOINT = "https://huggingface.co"
_ORIGIN = re.compile(ORIGIN_PATTERN)
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[!-~]*?)/?")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_MAX_URL = 2048
_SHOWN = 120


def _show(value: str) -> str:
    """A tenant- or server-supplied string for a message: repr-escaped and clipped."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...' ({len(value)} characters)"


def normalize_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL that is a plain origin, else None.

    Lower-cases scheme and host, drops the scheme's default port and one trailing ``/``. Strict on purpose:
    anything with a path, query, fragment or user info, a non-ASCII or percent-encoded host, a trailing dot,
    an out-of-range or zero-padded port is not an origin at all, so no policy entry can ever match it
    (it fails closed instead of being read as some origin a policy allows). Entries of
    ``spec.sources.endpoints`` must match ``ORIGIN_PATTERN``, the very pattern applied here.
    """
    if len(url) > _MAX_URL:
        return None
    match = _URL.fullmatch(url)
    if match is None:
        return None
    scheme, authority = match["scheme"].lower(), match["authority"]
    if scheme not in _DEFAULT_PORTS or any(c in authority for c in "/?#@%\\"):
        return None
    origin = f"{scheme}://{authority.lower()}"
    if not _ORIGIN.fullmatch(origin):
        return None
    default_port = _DEFAULT_PORTS[scheme]
    return origin[: -len(default_port)] if origin.endswith(default_port) else origin


def _origins(entries: Iterable[str] | None) -> set[str]:
    return {origin for entry in entries or () if (origin := normalize_origin(entry)) is not None}


def endpoint_violations(
    policies: Sequence[Policy], endpoint: str | None, default_endpoint: str | None = None
) -> list[Violation]:
    """Whether the governing policies let a model use this Hub endpoint; pure, usable before any network access.

    ``None`` is the public Hub (https://huggingface.co), allowed unless a policy denies it. Any other endpoint
    must be a plain origin that at least one usable governing policy lists in ``spec.sources.endpoints.allow``
    and none lists in ``deny``. A tenant chooses ``spec.source.endpoint``; a mirror the cluster admin did not
    allow would otherwise decide what "the repository" contains. A policy that cannot be used
    (``policy.problem``) allows nothing and its violation is always enforced. No policies means the built-in
    default (public Hub only). ``default_endpoint`` is the cluster admin's own Hub (the operator's setting for
    air-gapped clusters): like the public Hub it needs no allow entry, since the admin configured it.
    """
    governing = list(policies) or [BUILTIN_DEFAULT]
    origin = DEFAULT_ENDPOINT if endpoint is None else normalize_origin(endpoint)
    admin_default = normalize_origin(default_endpoint) if default_endpoint else None
    shown = _show(endpoint if endpoint is not None else DEFAULT_ENDPOINT)

    def violation(policy: Policy, message: str) -> Violation:
        enforced = policy.enforced or policy.problem is not None
        return Violation(Reason.ENDPOINT_NOT_ALLOWED, message, policy.name, enforced)

    if origin is None:
        return [
            violation(
                policy,
                f"spec.source.endpoint {shown} is not a plain origin (scheme://host[:port]: http or https, an ASCII "
                "host name or IP address, no path, query, user info or trailing dot), so no ModelTrustPolicy can "
                "allow it; set the mirror's origin, e.g. https://hf-mirror.example.com",
            )
            for policy in governing
        ]
    out: list[Violation] = []
    for policy in governing:
        if policy.problem is None and origin in _origins(policy.spec.sources.endpoints.deny):
            out.append(
                violation(
                    policy,
                    f"spec.source.endpoint {shown} (origin {origin}) is denied by spec.sources.endpoints.deny of "
                    f"ModelTrustPolicy {policy.name!r}; use an endpoint the policy allows",
                )
            )
    if origin == DEFAULT_ENDPOINT or (admin_default is not None and origin == admin_default):
        return out
    allowed = any(
        origin in _origins(policy.spec.sources.endpoints.allow) for policy in governing if policy.problem is None
    )
    if allowed:
        return out
    denied = {v.policy for v in out}
    for policy in governing:
        if policy.name in denied:
            continue
        hint = (
            " (no ModelTrustPolicy selects this namespace: the built-in default allows only the public Hub)"
            if policy.name == BUILTIN_DEFAULT_NAME
            else ""
        )
        out.append(
            violation(
                policy,
                f"spec.source.endpoint {shown} (origin {origin}) is not the public Hub ({DEFAULT_ENDPOINT}) and no "
                f"ModelTrustPolicy governing this namespace lists it in spec.sources.endpoints.allow{hint}; remove "
                f"spec.source.endpoint, or ask the cluster admin to add {origin} to spec.sources.endpoints.allow",
            )
        )
    return out


# ---------------------------------------------------------------- serving

TRUST_REMOTE_CODE = "--trust-remote-code"
# Server flags refused whatever the policy says: each makes vLLM load weights, a tokenizer, configuration or
# Python code from somewhere other than the verified volume, or overrides what the operator sets itself.
# Matched after "_" -> "-" and case folding, as the flag itself, --flag=value, --flag-<more> and any
# abbreviation argparse could expand to it.
BUILTIN_DENIED_ARGS: tuple[str, ...] = (
    "--model",  # the operator passes the verified volume as the model
    "--tokenizer",
    "--revision",
    "--code-revision",
    "--tokenizer-revision",
    "--download-dir",
    "--hf-overrides",
    "--hf-config-path",
    "--hf-token",
    "--config",  # a YAML file of further arguments
    "--model-loader-extra-config",
    "--lora-modules",
    "--prompt-adapters",
    "--qlora-adapter-name-or-path",
    "--speculative-config",
    "--speculative-model",
    "--generation-config",
    "--tool-parser-plugin",
    "--reasoning-parser-plugin",
    "--logits-processors",
    "--logits-processor-pattern",
    "--middleware",
    "--worker-cls",
    "--worker-extension-cls",
    "--kv-transfer-config",
    "--allowed-local-media-path",
    "--otlp-traces-endpoint",
    "--api-key",  # the generated key (VLLM_API_KEY) guards the endpoint; vLLM takes this flag before it
    "--host",  # forced by the operator (the Service and probes depend on them); set spec.serving.port instead
    "--port",
    "--uds",
)
# Complete vLLM flags that a built-in entry would refuse as "--x-<more>" or as an abbreviation but that only
# select among built-in behaviours for the verified model; a policy's own deniedArgs can still refuse them.
BUILTIN_ALLOWED_FLAGS: frozenset[str] = frozenset(
    {"--tokenizer-mode", "--model-impl", "--config-format", "--reasoning-parser"}
)
# Environment variables refused whatever the policy says (name globs, case-insensitive): Hub/ModelScope
# downloads and caches, the interpreter's and the dynamic linker's search paths and start-up hooks, vLLM
# plugins and paths, NCCL plugins. HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE are forced by the operator anyway.
BUILTIN_DENIED_ENV: tuple[str, ...] = (
    "HF_*",
    "HUGGINGFACE_*",
    "HUGGING_FACE_*",
    "TRANSFORMERS_*",
    "*MODELSCOPE*",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONBREAKPOINT",
    "PYTHONEXECUTABLE",
    "PYTHONPLATLIBDIR",
    "PYTHONWARNINGS",
    "PYTHONINSPECT",
    "LD_*",
    "GLIBC_TUNABLES",
    "PATH",
    "BASH_ENV",
    "ENV",
    "VLLM_PLUGINS",
    "VLLM_*PLUGIN*",
    "VLLM_*_PATH",
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING",
    "VLLM_ALLOW_INSECURE_SERIALIZATION",
    "NCCL_*PLUGIN*",
)
_MAX_LISTED_OFFENCES = 5


def _flag(arg: str) -> str | None:
    """The normalized flag name of a command-line argument (``--Trust_Remote_Code=1`` -> ``--trust-remote-code``)."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    # vLLM reads ``--speculative-config.model X`` (and ``.key+`` to append) as a key of the JSON flag
    # ``--speculative-config``: the flag is the name before the first dot
    name = arg.split("=", 1)[0].split(".", 1)[0].rstrip("+")
    if name.startswith("--"):
        return "--" + name[2:].replace("_", "-").casefold()
    return name.casefold()


def _flag_matches(flag: str, denied: str) -> bool:
    """``--x`` denies ``--x``, ``--x-more`` and abbreviations of ``--x`` (argparse expands unique prefixes)."""
    if denied.startswith("--"):
        return flag == denied or flag.startswith(denied + "-") or (len(flag) > 2 and denied.startswith(flag))
    return flag.startswith(denied)


def serving_violations(policy: Policy, serving: ServingSpec, runtime_image: str | None) -> list[Violation]:
    """What ``spec.serving`` would change about the server that this policy refuses (empty: nothing).

    The verified volume only means something if the server loads it and nothing else: an image the cluster
    admin did not choose, an argument naming another model, tokenizer or config, or an environment variable
    redirecting downloads or injecting code would route around verification. ``runtime_image`` is the image
    the operator is configured with (always allowed; ``None`` when unknown, e.g. the CLI: then only
    ``allowedImages`` admits an explicit image). ``runtime: none`` serves nothing, so nothing is checked.
    """
    if serving.runtime == "none":
        return []
    rules = policy.spec.serving
    offences: list[str] = []
    image = serving.image
    images = list(rules.allowed_images or [])
    if image is not None and image != runtime_image and not any(glob_match(glob, image) for glob in images):
        runtime = _show(runtime_image) if runtime_image else "(not known here)"
        offences.append(
            f"spec.serving.image {_show(image)} is neither the operator's runtime image {runtime} nor matches "
            f"spec.serving.allowedImages {images}"
        )
    builtin = [*BUILTIN_DENIED_ARGS, *([] if rules.allow_trust_remote_code else [TRUST_REMOTE_CODE])]
    own_denied = [_flag(a) or a for a in rules.denied_args or []]
    for index, arg in enumerate(serving.args or []):
        flag = _flag(arg)
        if flag is None:
            continue
        denied_args = own_denied if flag in BUILTIN_ALLOWED_FLAGS else [*builtin, *own_denied]
        hit = next((d for d in denied_args if _flag_matches(flag, d)), None)
        if hit is None:
            continue
        why = (
            "runs Python code shipped with the model; set spec.serving.allowTrustRemoteCode: true in the policy "
            "after reviewing that code"
            if hit == TRUST_REMOTE_CODE
            else "it would make the server load or do something other than serve the verified files"
        )
        offences.append(f"spec.serving.args[{index}] {_show(arg)} is refused as {hit} ({why})")
    if rules.require_api_key and not serving.access.api_key:
        offences.append(
            "spec.serving.access.apiKey is false but the policy requires an API key on every endpoint "
            "(spec.serving.requireAPIKey); set spec.serving.access.apiKey: true"
        )
    denied_env = [*BUILTIN_DENIED_ENV, *(rules.denied_env or [])]
    for index, env in enumerate(serving.env or []):
        glob = _matches_any(denied_env, env.name)
        if glob is not None:
            source = "valueFrom" if env.value_from is not None else "value"
            offences.append(f"spec.serving.env[{index}] {_show(env.name)} ({source}) is refused by {glob!r}")
    if not offences:
        return []
    listed = "; ".join(offences[:_MAX_LISTED_OFFENCES])
    more = len(offences) - _MAX_LISTED_OFFENCES
    return [
        Violation(
            Reason.SERVING_NOT_ALLOWED,
            f"ModelTrustPolicy {policy.name!r} refuses the serving configuration: {listed}"
            + (f" and {more} more" if more > 0 else "")
            + "; remove them from spec.serving (the server runs the verified volume only)",
            policy.name,
            policy.enforced,
        )
    ]


def check_signature(policy: Policy, evidence: Evidence, now: datetime.datetime | None = None) -> SignatureCheck:
    """Verify the bundle against this policy's own anchors, then compare the signed files to the pinned ones.

    Only ``policy`` supplies anchors (keys, CAs, keyless identities and trusted root): another
    policy's anchors never vouch for this one. A policy whose anchors are unusable fails closed with
    ``PolicyInvalid``, signed model or not. ``now`` is the time certificates are judged at (the caller's
    clock; None reads the wall clock).
    """
    try:
        anchors = trust_anchors(policy)
    except PolicyError as exc:
        return SignatureCheck(None, SignatureFailure(Reason.POLICY_INVALID, exc.detail))
    if evidence.bundle is None:
        return SignatureCheck(None, None)
    result = verify_bundle(evidence.bundle, anchors, now=now)
    if isinstance(result, SignatureFailure):
        return SignatureCheck(None, result)
    mismatches = compare_manifest(result.resources, evidence.source.files, evidence.signature_path, result.ignore_paths)
    return SignatureCheck(result, None, tuple(mismatches))


def describe_mismatches(mismatches: Sequence[FileMismatch]) -> str:
    """A short human list of which files differ from the signed manifest and how."""
    listed = ", ".join(f"{m.path} ({m.problem.value})" for m in mismatches[:_MAX_LISTED_FILES])
    more = len(mismatches) - _MAX_LISTED_FILES
    return listed + (f" and {more} more" if more > 0 else "")


def _signature_violation(policy: Policy, check: SignatureCheck, pinned_ok: bool) -> Violation | None:
    rules = policy.spec.signature
    enforced = policy.enforced
    if check.failure is not None and check.failure.reason is Reason.POLICY_INVALID:
        # an unusable policy is enforced whatever its mode: it must never read as "ignored, others decide"
        return _policy_invalid(policy, check.failure.message)
    if check.evidence is not None and check.mismatches:
        # a trusted signer's manifest disagrees with the pinned files: tampering or a replayed bundle
        return Violation(
            Reason.MANIFEST_MISMATCH,
            f"the signature by {check.evidence.identity} does not cover the pinned content: "
            f"{describe_mismatches(check.mismatches)}",
            policy.name,
            enforced,
        )
    if check.covers_content:
        return None
    if rules.required:
        if check.failure is not None:
            return Violation(check.failure.reason, check.failure.message, policy.name, enforced)
        hint = (
            "; no ModelTrustPolicy selects this namespace, so the built-in default applies: create one that trusts "
            "your signer"
            if policy.name == BUILTIN_DEFAULT_NAME
            else ""
        )
        return Violation(
            Reason.SIGNATURE_MISSING,
            f"ModelTrustPolicy {policy.name!r} requires a signature (spec.signature.required: true) and the model has "
            f"none; sign it with model-signing, or keep an organisation countersignature in a ConfigMap and point "
            f"spec.trust.signature.configMapRef at it{hint}",
            policy.name,
            enforced,
        )
    if rules.allow_pinned_digest and not pinned_ok:
        detail = f" ({check.failure.message})" if check.failure else ""
        return Violation(
            Reason.SIGNATURE_MISSING,
            f"ModelTrustPolicy {policy.name!r} admits Signed or Pinned models only; this one is neither{detail}. "
            "Review the content and set spec.source.digest to the digest `openmodel digest` prints",
            policy.name,
            enforced,
        )
    return None


def covered_files(
    evidence: Evidence, check: SignatureCheck | None, pinned_ok: bool, readable: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The evidence files (README.md, openness.yaml) this policy can vouch for.

    A file is covered when its bytes hash to the listed sha256 (``Evidence.evidence_bytes``) and
    either the name-bound pin matched, or this policy's trust anchors verified a bundle that signs
    the file under that path with that sha256 and covers the content with no mismatch. A file the
    signer left out (``ignore_paths``) is therefore not covered, whatever it says.
    """
    names = tuple(evidence.evidence_bytes()) if readable is None else tuple(readable)
    if pinned_ok:
        return names
    if check is None or not check.covers_content or check.evidence is None:
        return ()
    listed = {f.path: f.sha256.lower() for f in evidence.source.files}
    signed = check.evidence.resources
    return tuple(p for p in names if signed.get(p, "").lower() == listed.get(p))


class _OpennessCache:
    """One assessment per set of covered files (policies usually agree; parsing YAML once is enough)."""

    def __init__(self, evidence: Evidence) -> None:
        self.readable = evidence.evidence_bytes()
        listed = {f.path for f in manifest_files(evidence.source.files, evidence.signature_path)}
        self.present = tuple(p for p in EVIDENCE_FILES if p in listed)
        self._cache: dict[tuple[str, ...], OpennessEvidence] = {}

    def get(self, covered: tuple[str, ...]) -> OpennessEvidence:
        if covered not in self._cache:
            uncovered = [p for p in self.present if p not in covered]
            self._cache[covered] = assess_files(
                self.readable.get(README_FILE) if README_FILE in covered else None,
                self.readable.get(DECLARATION_FILE) if DECLARATION_FILE in covered else None,
                uncovered,
            )
        return self._cache[covered]

    def hint(self, covered: tuple[str, ...]) -> str:
        """Why a present card or declaration was not read, for license and openness messages."""
        uncovered = [p for p in self.present if p not in covered]
        if not uncovered:
            return ""
        one = len(uncovered) == 1
        return (
            f"; {' and '.join(uncovered)} {'is' if one else 'are'} present but not covered by a signature this "
            "policy trusts (with no mismatch) or by spec.source.digest, so not read as evidence: sign "
            f"{'it' if one else 'them'} (not in the signer's ignore_paths) or pin the reviewed content"
        )


def _evidence_violations(policy: Policy, openness: OpennessEvidence, hint: str) -> list[Violation]:
    """The policy's license and openness rules applied to what its covered evidence says."""
    found: list[Violation] = []
    lic = policy.spec.licenses
    for reason, message in evaluate_license(
        openness.license, lic.allow_osi_approved, list(lic.allow or []), list(lic.deny or [])
    ):
        detail = hint if reason is Reason.LICENSE_UNKNOWN else ""
        found.append(
            Violation(reason, f"{message}{detail} (ModelTrustPolicy {policy.name!r})", policy.name, policy.enforced)
        )
    rules = policy.spec.openness
    for reason, message in evaluate_openness(openness, rules.minimum_class, rules.require_osaid):
        found.append(
            Violation(reason, f"{message}{hint} (ModelTrustPolicy {policy.name!r})", policy.name, policy.enforced)
        )
    return found


def _policy_invalid(policy: Policy, problem: str) -> Violation:
    """A policy that cannot be used fails every model it governs, whatever its mode (never "ignored")."""
    return Violation(
        Reason.POLICY_INVALID,
        f"ModelTrustPolicy {policy.name!r} cannot be used, so no model it governs is admitted: {problem}; "
        f"fix the policy (kubectl describe modeltrustpolicy {policy.name} shows why) or delete it",
        policy.name,
        True,
    )


def policy_violations(policy: Policy) -> list[Violation]:
    """PolicyInvalid when the policy cannot be used: its manifest failed validation or an anchor does not load."""
    if policy.problem is not None:
        return [_policy_invalid(policy, policy.problem)]
    try:
        trust_anchors(policy)
    except PolicyError as exc:
        return [_policy_invalid(policy, exc.detail)]
    return []


def decide(
    policies: Sequence[Policy],
    evidence: Evidence,
    *,
    serving: ServingSpec | None = None,
    runtime_image: str | None = None,
    default_endpoint: str | None = None,
    now: datetime.datetime | None = None,
) -> Verdict:
    """Evaluate every governing policy against the evidence and derive the tier.

    ``serving`` (the OpenModel's spec.serving) and ``runtime_image`` (the operator's configured server image)
    are checked against each policy's ``spec.serving``; ``serving=None`` (the CLI, which serves nothing)
    skips that check. The endpoint of an hf:// source is checked with :func:`endpoint_violations`, the same
    function the operator calls before it contacts the endpoint at all.
    """
    policies = list(policies) or [BUILTIN_DEFAULT]  # nothing governs: the built-in default, never "anything goes"
    digest = evidence.manifest_digest
    pinned_ok = evidence.pinned_digest is not None and evidence.pinned_digest == digest
    violations: list[Violation] = []
    if evidence.pinned_digest is not None and not pinned_ok:
        violations.append(
            Violation(
                Reason.DIGEST_PIN_MISMATCH,
                f"spec.source.digest is {evidence.pinned_digest} but the resolved content has manifest digest "
                f"{digest}; the content changed since it was reviewed. Review it and update the pin, or pin "
                "spec.source.revision to the reviewed commit",
                PIN_POLICY,
                True,
            )
        )

    endpoint_refusals = (
        endpoint_violations(policies, evidence.source.endpoint, default_endpoint)
        if evidence.source.uri.startswith("hf://")
        else []
    )
    outcomes: list[PolicyOutcome] = []
    openness_of = _OpennessCache(evidence)
    shown = covered_files(evidence, None, pinned_ok, tuple(openness_of.readable))  # the pin alone
    best: SignatureCheck | None = None
    first_failure: SignatureFailure | None = None
    all_mismatches: tuple[FileMismatch, ...] = ()
    for policy in policies:
        own: list[Violation] = []
        if policy.problem is not None:
            own.append(_policy_invalid(policy, policy.problem))
            outcomes.append(PolicyOutcome(policy.name, policy.generation, policy.spec.mode, tuple(own)))
            violations.extend(own)
            continue
        if (v := source_allowed(policy, evidence.source.uri)) is not None:
            own.append(v)
        check = check_signature(policy, evidence, now)  # anchors that do not load come back as PolicyInvalid
        if check.covers_content and best is None:
            best = check
        if check.failure is not None and first_failure is None:
            first_failure = check.failure
        if check.mismatches and not all_mismatches:
            all_mismatches = check.mismatches
        signature_violation = _signature_violation(policy, check, pinned_ok)
        if signature_violation is not None:
            own.append(signature_violation)
        covered = covered_files(evidence, check, pinned_ok, tuple(openness_of.readable))
        if len(covered) > len(shown):
            shown = covered
        hint = openness_of.hint(covered)
        # A policy that already refuses the model on its signature cannot read the card or the
        # declaration for that same reason: "license unknown" would only repeat that violation.
        if signature_violation is None or not hint:
            own.extend(_evidence_violations(policy, openness_of.get(covered), hint))
        # what the content is comes first in the reasons, then how it is fetched and served
        own.extend(v for v in endpoint_refusals if v.policy == policy.name)
        if serving is not None:
            own.extend(serving_violations(policy, serving, runtime_image))
        anchor = check.evidence.anchor if check.covers_content and check.evidence is not None else None
        outcomes.append(PolicyOutcome(policy.name, policy.generation, policy.spec.mode, tuple(own), anchor))
        violations.extend(own)

    tier = TrustTier.SIGNED if best is not None else TrustTier.PINNED if pinned_ok else TrustTier.UNVERIFIED
    return Verdict(
        trusted=not any(v.enforced for v in violations),
        tier=tier,
        manifest_digest=digest,
        outcomes=tuple(outcomes),
        violations=tuple(violations),
        signature=best.evidence if best else None,
        signature_failure=None if best else first_failure,
        mismatches=all_mismatches,
        openness=openness_of.get(shown),
        evidence_files=shown,
    )


def manifest_size(evidence: Evidence) -> tuple[int, int]:
    """(file count, total bytes) of the manifest."""
    files = manifest_files(evidence.source.files, evidence.signature_path)
    return len(files), sum(f.size for f in files)
