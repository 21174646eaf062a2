"""
Pytest fixtures: the strict Kubernetes emulator (``kube``) and a Kopf operator running against it.

Use them from a test module with ``pytest_plugins = ['kube_fixtures']`` (or from a conftest.py)::

    async def test_something(kube, run_operator):
        registry = kopf.OperatorRegistry()
        ...  # handlers with registry=registry
        async with run_operator(registry) as operator:
            await kube.http.post('/apis/openmodel.io/v1alpha1/namespaces/default/openmodels', json={...})
            await kube.wait_for(lambda: kube.get('openmodels', 'default', 'x')['status'].get('phase'))

The operator runs as a task in the test's own event loop (``kopf.operator(...)``), not in a thread:
Kopf's ``KopfRunner`` deadlocks with an in-loop server. The settings keep ``metadata.annotations``
clean (Kopf's state lives in ``status.operator``) and make reconnects/cancellation fast.

PYTEST_DONT_REWRITE (imported by test modules before pytest registers it as a plugin).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import kmock
import kopf
import pytest
import pytest_asyncio
import yaml

try:
    from kube_emulator import KubeEmulator
except ModuleNotFoundError:  # if tests/ ever becomes a package
    from tests.kube_emulator import KubeEmulator  # type: ignore[no-redef]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
EMULATOR_LOGIN_ID = 'kube-emulator-login'

SettingsHook = Callable[[kopf.OperatorSettings], None]


def repo_crds(directory: pathlib.Path = REPO_ROOT / 'crds') -> list[dict[str, Any]]:
    """The project's real CRD manifests (``crds/*.yaml``), so that pruning and validation are real."""
    result: list[dict[str, Any]] = []
    for path in sorted(directory.glob('*.y*ml')) if directory.is_dir() else []:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get('kind') == 'CustomResourceDefinition':
                result.append(doc)
    return result


@contextlib.asynccontextmanager
async def serve_emulator(*, crds: Iterable[dict[str, Any]] = (), **kwargs: Any) -> AsyncIterator[KubeEmulator]:
    """Run a :class:`KubeEmulator` on a random localhost port; watch streams end before the server stops."""
    async with KubeEmulator(crds=list(crds), **kwargs) as emulator, kmock.Server(emulator):
        try:
            yield emulator
        finally:
            emulator.close()


@pytest_asyncio.fixture()
async def kube() -> AsyncIterator[KubeEmulator]:
    """The running emulator, with the repository's CRD manifests installed when ``crds/`` has any."""
    async with serve_emulator(crds=repo_crds()) as emulator:
        yield emulator


def tuned_settings(settings: kopf.OperatorSettings | None = None) -> kopf.OperatorSettings:
    """Kopf settings for tests: no scanning, fast retries and cancellation, state kept in ``status.operator``."""
    settings = settings or kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field='status.operator.lastApplied')
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field='status.operator.progress')
    settings.background.cancellation_polling = 0.1
    settings.watching.reconnect_backoff = 0.1
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.networking.request_timeout = 10
    settings.queueing.exit_timeout = 1.0
    settings.posting.default_backoffs = [0.1, 0.2]
    return settings


@dataclasses.dataclass
class RunningOperator:
    """A Kopf operator running as a task in the test's loop."""
    task: asyncio.Task[None]
    settings: kopf.OperatorSettings
    registry: kopf.OperatorRegistry
    stop_flag: asyncio.Event


def _add_login(registry: kopf.OperatorRegistry, kube: KubeEmulator) -> None:
    if any(h.id == EMULATOR_LOGIN_ID for h in registry._activities.get_all_handlers()):
        return

    @kopf.on.login(id=EMULATOR_LOGIN_ID, registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=kube.base_url, insecure=True, default_namespace='default')


@contextlib.asynccontextmanager
async def operator_running(
        kube: KubeEmulator,
        registry: kopf.OperatorRegistry,
        *,
        startup: SettingsHook | None = None,
        namespaces: Iterable[str] = (),
        ready_timeout: float = 10.0,
        stop_timeout: float = 10.0,
) -> AsyncIterator[RunningOperator]:
    """
    Run ``kopf.operator(...)`` against the emulator until the block exits, then stop it cleanly.

    ``startup`` adjusts the (already test-tuned) settings before the operator starts. The operator is
    cluster-wide unless ``namespaces`` are given; it is always standalone (no peering).
    A failure of the operator task is re-raised when the block exits.
    """
    settings = tuned_settings()
    if startup is not None:
        startup(settings)
    _add_login(registry, kube)
    stop_flag, ready_flag = asyncio.Event(), asyncio.Event()
    namespaces = list(namespaces)
    task = asyncio.create_task(kopf.operator(
        registry=registry, settings=settings, standalone=True, clusterwide=not namespaces,
        namespaces=namespaces, stop_flag=stop_flag, ready_flag=ready_flag), name='kopf-operator-under-test')
    ready = asyncio.create_task(ready_flag.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # re-raise why it died
            raise RuntimeError('the operator exited before it became ready')
        if not done:
            raise TimeoutError(f'the operator did not become ready in {ready_timeout}s')
        yield RunningOperator(task=task, settings=settings, registry=registry, stop_flag=stop_flag)
    finally:
        ready.cancel()
        stop_flag.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=stop_timeout)
        except TimeoutError:
            logging.getLogger(__name__).warning('the operator did not stop in %ss; cancelling it', stop_timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture()
def run_operator(kube: KubeEmulator) -> Callable[..., AbstractAsyncContextManager[RunningOperator]]:
    """``async with run_operator(registry, startup=...) as operator:`` against the ``kube`` emulator."""
    def factory(registry: kopf.OperatorRegistry, startup: SettingsHook | None = None,
                **kwargs: Any) -> AbstractAsyncContextManager[RunningOperator]:
        return operator_running(kube, registry, startup=startup, **kwargs)
    return factory
