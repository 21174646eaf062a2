"""A stand-in for the kubelet, for tests: runs the ``openmodel`` containers of a Job or a Deployment's pod
template in this process, with the pod's volumes as directories.

The emulator has no kubelet, so nothing would ever read the volume layout the operator plans. This plays
one node: a claim is a directory that outlives pods, a ConfigMap volume is its current data written out at
pod start (as the kubelet projects it), ``subPath`` picks a directory inside the claim, and every argument
that names a path under a mount is rewritten to the directory behind it. Only containers whose command is
``openmodel`` run (the fetch Job, the verify-on-start check, the prune Job); a server container is what
the test asserts about, not something it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kube_emulator import KubeEmulator
from openmodel_operator.cli import build_parser, main

_STREAMED = frozenset({"fetch", "prune"})  # subcommands whose run() takes the log stream


class Kubelet:
    """One node: its claims live under ``root/claims/<namespace>/<claim>``."""

    def __init__(self, kube: KubeEmulator, root: Path) -> None:
        self.kube = kube
        self.root = root
        self.logs: list[str] = []

    def claim(self, namespace: str, name: str) -> Path:
        path = self.root / "claims" / namespace / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_job(self, namespace: str, name: str) -> int:
        """The Job's pod, once: the exit code of its container."""
        job = self.kube.get("jobs", namespace, name)
        assert job is not None, f"no Job {namespace}/{name}"
        return self.run_pod(namespace, job["spec"]["template"]["spec"])

    def start_server_pod(self, namespace: str, deployment: str) -> int:
        """A serving pod (re)starting from the Deployment's current template: its init containers' exit code
        (0 means the server may start on what it mounts)."""
        obj = self.kube.get("deployments", namespace, deployment)
        assert obj is not None, f"no Deployment {namespace}/{deployment}"
        return self.run_pod(namespace, obj["spec"]["template"]["spec"], main_containers=False)

    def server_sees(self, namespace: str, deployment: str, path: str = "/models") -> Path:
        """The directory behind a mount path of the server container (/models, /adapters/<name>)."""
        obj = self.kube.get("deployments", namespace, deployment)
        assert obj is not None
        spec = obj["spec"]["template"]["spec"]
        server = next(c for c in spec["containers"] if c["name"] == "server")
        with tempfile.TemporaryDirectory() as scratch:
            mounts = self._mounts(namespace, spec, server, Path(scratch))
        return mounts[path]

    def run_pod(self, namespace: str, spec: Mapping[str, Any], main_containers: bool = True) -> int:
        containers = list(spec.get("initContainers") or []) + (list(spec["containers"]) if main_containers else [])
        for container in containers:
            command = [*container.get("command", []), *container.get("args", [])]
            if not command or command[0] != "openmodel":
                continue
            with tempfile.TemporaryDirectory() as scratch:
                mounts = self._mounts(namespace, spec, container, Path(scratch))
                argv = [_rewrite(arg, mounts) for arg in command[1:]]
                out = io.StringIO()
                if argv and argv[0] in _STREAMED:
                    # the log goes to this pod's own stream: redirect_stdout is process-wide, and pods of
                    # cluster_player run in several threads at once
                    args = build_parser().parse_args(argv)
                    code = int(args.func(args, stream=out))
                else:
                    with contextlib.redirect_stdout(out):
                        code = main(argv)
                self.logs.append(out.getvalue())
            if code != 0:
                return code
        return 0

    def _mounts(
        self, namespace: str, spec: Mapping[str, Any], container: Mapping[str, Any], scratch: Path
    ) -> dict[str, Path]:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                path = self.claim(namespace, volume["persistentVolumeClaim"]["claimName"])
            elif "configMap" in volume:
                path = scratch / ("cm-" + mount["name"])
                path.mkdir()
                cm = self.kube.get("configmaps", namespace, volume["configMap"]["name"])
                assert cm is not None, f"ConfigMap {volume['configMap']['name']} is missing: the pod would not start"
                for key, value in (cm.get("data") or {}).items():
                    (path / key).write_text(value)
            else:
                path = scratch / ("dir-" + mount["name"])
                path.mkdir()
            if mount.get("subPath"):
                path = path / mount["subPath"]
                path.mkdir(parents=True, exist_ok=True)  # the kubelet creates a missing subPath
            mounts[mount["mountPath"]] = path
        return mounts


def _rewrite(arg: str, mounts: Mapping[str, Path]) -> str:
    for mount_path in sorted(mounts, key=len, reverse=True):
        if arg == mount_path or arg.startswith(mount_path + "/"):
            return str(mounts[mount_path]) + arg[len(mount_path) :]
    return arg


def tree_digest(path: Path) -> str:
    """Names and bytes of every file under ``path``: equal only if nothing in it changed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()
