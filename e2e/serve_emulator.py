"""Serve the project's Kubernetes API emulator over plain HTTP, so the e2e suite can be checked without a cluster.

    python e2e/serve_emulator.py --kubeconfig /tmp/emulator.kubeconfig &
    E2E_KUBECONFIG=/tmp/emulator.kubeconfig E2E_SIMULATE_WORKLOADS=1 pytest -c e2e/pytest.ini e2e

It runs ``KubeEmulator`` of ``tests/kube_emulator/`` (a strict, stateful imitation of a bare kube-apiserver v1.28
with no kubelet and no controllers, like envtest) with ``crds/*.yaml`` installed, on ``127.0.0.1``, and writes
a kubeconfig whose server is ``http://127.0.0.1:PORT`` (no credentials).

The emulator was written for API clients (Kopf, lightkube), not for kubectl. This subclass adds what kubectl
needs and nothing else; the object semantics stay the emulator's:

* discovery: kmock answers ``/api/v1`` with ``groupVersion: "/v1"``, so kubectl's REST mapper finds no core
  resource at all ("the server doesn't have a resource type namespaces"); subresources are listed with the
  parent's short names and verbs. Fixed here.
* OpenAPI: ``kubectl apply`` (with its default ``--validate=strict``) loads ``/openapi/v2`` and fails with a
  404. Served here as an empty document (protobuf, as kubectl asks: no schemas, so client-side validation
  checks nothing), plus an ``/openapi/v3`` that only declares, per resource, a PATCH operation accepting the
  ``fieldValidation`` query parameter: that is how kubectl decides to send ``fieldValidation=Strict``, so
  unknown fields are refused by the emulator as by a real server. No schemas: ``kubectl explain`` fails.
* server-side printing: ``kubectl get`` asks for ``application/json;as=Table``. For custom resources a
  ``meta.k8s.io/v1`` Table is built from the CRD's ``additionalPrinterColumns`` (the simple JSONPath subset
  CRDs use), as the apiextensions-apiserver does. Built-in kinds answer plain JSON, which kubectl prints as
  NAME and AGE only. ``--no-table`` turns this off (to exercise the suite's fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import pathlib
import re
import signal
import sys
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from kube_emulator import KubeEmulator, parse_api_path  # noqa: E402

JsonDict = dict[str, Any]
# what kube-apiserver answers (the Accept form with "@" is not a valid media type for Go's mime parser)
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "finalize": ["update"], "scale": ["get", "patch", "update"]}


def repo_crds(directory: pathlib.Path = ROOT / "crds") -> list[JsonDict]:
    """The generated CRD manifests (``crds/*.yaml``)."""
    crds: list[JsonDict] = []
    for path in sorted(directory.glob("*.y*ml")):
        crds.extend(
            doc
            for doc in yaml.safe_load_all(path.read_text())
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
        )
    return crds


# ---------------------------------------------------------------- protobuf (just enough for an empty document)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings and nested messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def openapi_v2_protobuf(version: str) -> bytes:
    """gnostic ``openapi_v2.Document{swagger: "2.0", info: {title, version}}``: no paths, no definitions."""
    info = _field(1, b"Kubernetes") + _field(2, version.encode())
    return _field(1, b"2.0") + _field(2, info)


# ---------------------------------------------------------------- the JSONPath subset of printer columns

_STEP = re.compile(r"""\.([A-Za-z0-9_-]+)|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*(?:"([^"]*)"|'([^']*)')\)\]|\[(\d+|\*)\]""")


def jsonpath(doc: Any, path: str) -> list[Any]:
    """Every value ``path`` selects: ``.a.b``, ``[0]``, ``[*]`` and ``[?(@.key=="value")]`` steps."""
    values = [doc]
    pos = 0
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {pos}")
        pos = match.end()
        name, key, quoted, single, index = match.groups()
        selected: list[Any] = []
        for value in values:
            if name is not None:
                if isinstance(value, dict) and name in value:
                    selected.append(value[name])
            elif key is not None:
                wanted = quoted if quoted is not None else single
                for item in value if isinstance(value, list) else []:
                    found = jsonpath(item, "." + key)
                    if found and str(found[0]) == wanted:
                        selected.append(item)
            elif isinstance(value, list):
                if index == "*":
                    selected.extend(value)
                elif int(str(index)) < len(value):
                    selected.append(value[int(str(index))])
        values = selected
    return values


def human_age(timestamp: str, now: datetime.datetime) -> str:
    """Like Kubernetes' ``duration.HumanDuration`` for the common ranges."""
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


@attrs.define(kw_only=True)
class ServedEmulator(KubeEmulator):
    """The emulator plus the discovery, OpenAPI and Table answers kubectl depends on."""

    tables: bool = True

    async def _serve_version(self, request: Any) -> Any:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict):
            payload["groupVersion"] = str(payload.get("groupVersion", "")).lstrip("/")
            for resource in payload.get("resources") or []:
                if "/" in resource["name"]:
                    sub = resource["name"].split("/", 1)[1]
                    resource.update(singularName="", shortNames=[], categories=[])
                    resource["verbs"] = _SUBRESOURCE_VERBS.get(sub, ["get"])
        return payload

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw_request.path.rstrip("/")
        if raw_request.method == "GET" and path in ("/openapi/v2", "/swagger-2.0.0.pb-v1"):
            return self._openapi_v2(raw_request)
        if raw_request.method == "GET" and (path == "/openapi/v3" or path.startswith("/openapi/v3/")):
            return self._openapi_v3(path.removeprefix("/openapi/v3").strip("/"))
        response = await super().__call__(raw_request)
        if self.tables and raw_request.method == "GET" and "as=Table" in raw_request.headers.get("Accept", ""):
            return self._as_table(raw_request, response)
        return response

    def _openapi_v2(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        version = "v1.28.15"
        if "protobuf" in raw_request.headers.get("Accept", ""):
            response = aiohttp.web.Response(body=openapi_v2_protobuf(version), content_type=OPENAPI_V2_PROTOBUF)
        else:
            document = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": version}, "paths": {}}
            response = aiohttp.web.json_response(document)
        return self._finish(response)

    def _group_versions(self) -> dict[str, list[Any]]:
        """Served resources by OpenAPI v3 path: ``api/v1``, ``apis/<group>/<version>``."""
        by_path: dict[str, list[Any]] = {}
        for rd in list(self._defs.values()):
            key = f"api/{rd.version}" if rd.group == "" else f"apis/{rd.group}/{rd.version}"
            by_path.setdefault(key, []).append(rd)
        return by_path

    def _openapi_v3(self, group_version: str) -> aiohttp.web.StreamResponse:
        served = self._group_versions()
        if not group_version:
            index = {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self.resource_version}"} for gv in served}
            return self._finish(aiohttp.web.json_response({"paths": index}))
        if group_version not in served:
            return self._finish(aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404))
        paths: JsonDict = {}
        for rd in served[group_version]:
            scope = "namespaces/{namespace}/" if rd.namespaced else ""
            paths[f"/{group_version}/{scope}{rd.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": {"group": rd.group, "version": rd.version, "kind": rd.kind},
                    "x-kubernetes-action": "patch",
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        document = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.28.15"}, "paths": paths}
        return self._finish(aiohttp.web.json_response(document))

    def _as_table(
        self, raw_request: aiohttp.web.BaseRequest, response: aiohttp.web.StreamResponse
    ) -> aiohttp.web.StreamResponse:
        target = parse_api_path(raw_request.path)
        watching = raw_request.query.get("watch") in ("true", "1")
        if (
            target is None
            or target.watch_path
            or watching
            or target.subresource
            or response.status != 200
            or not isinstance(response, aiohttp.web.Response)
            or not isinstance(response.body, bytes)
        ):
            return response
        crd = self._live(self._def("customresourcedefinitions"), None, f"{target.plural}.{target.group}")
        if crd is None:
            return response  # built-ins: kubectl prints NAME and AGE from plain JSON
        version: JsonDict = next((v for v in crd["spec"].get("versions") or [] if v.get("name") == target.version), {})
        columns = version.get("additionalPrinterColumns") or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]
        body = json.loads(response.body)
        items = body.get("items") if target.name is None else [body]
        now = datetime.datetime.now(datetime.UTC)
        definitions = [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name must be unique within a namespace.",
                "priority": 0,
            }
        ] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": int(c.get("priority", 0)),
            }
            for c in columns
        ]
        include = raw_request.query.get("includeObject", "Metadata")
        rows = []
        for item in items or []:
            cells: list[Any] = [item["metadata"]["name"]]
            for column in columns:
                found = jsonpath(item, column["jsonPath"])
                if not found:
                    cells.append(None)
                elif column.get("type") == "date":
                    cells.append(human_age(str(found[0]), now))
                elif column.get("type", "string") == "string":
                    cells.append(",".join(str(v) for v in found))
                else:
                    cells.append(found[0])
            row: JsonDict = {"cells": cells}
            if include == "Object":
                row["object"] = item
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                }
            rows.append(row)
        metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "selfLink"}
        table = {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata if target.name is None else {"resourceVersion": self.resource_version},
            "columnDefinitions": definitions,
            "rows": rows,
        }
        return self._finish(aiohttp.web.json_response(table))


def kubeconfig(server: str) -> JsonDict:
    """A kubeconfig for an insecure, credential-less HTTP server."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "emulator", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        "current-context": "emulator",
    }


async def serve(path: pathlib.Path, port: int, crds: bool, tables: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        ServedEmulator(crds=repo_crds() if crds else [], tables=tables) as emulator,
        kmock.Server(emulator, host="127.0.0.1", port=port or None),
    ):
        try:
            path.write_text(yaml.safe_dump(kubeconfig(emulator.base_url), sort_keys=False))
            print(f"emulator at {emulator.base_url}; kubeconfig written to {path}", flush=True)
            await stop.wait()
        finally:
            emulator.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-crds", action="store_true", help="start without crds/*.yaml (kubectl installs them)")
    parser.add_argument("--no-table", action="store_true", help="answer plain JSON to Table requests")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.kubeconfig, args.port, crds=not args.no_crds, tables=not args.no_table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
