"""Stand-ins for the controllers and the kubelet that a bare apiserver does not have. Nothing runs them on
its own: a test calls them explicitly to play the part of a full cluster (a Job finishing, a Deployment
becoming available, one pass of the garbage collector, the namespace controller).
"""

from __future__ import annotations

from .json_values import JsonDict, timestamp
from .resources import ResourceDef
from .state import EmulatorState


class ControllersMixin(EmulatorState):
    """Simulated controllers, called by tests."""

    __slots__ = ()

    def complete_job(self, namespace: str, name: str, *, succeeded: bool = True) -> JsonDict:
        """Simulate the Job controller finishing a Job (status as written by v1.28's job controller)."""
        now = timestamp()
        kind = 'Complete' if succeeded else 'Failed'
        condition = {'type': kind, 'status': 'True', 'lastProbeTime': now, 'lastTransitionTime': now}
        if not succeeded:
            condition.update(reason='BackoffLimitExceeded', message='Job has reached the specified backoff limit')
        status: JsonDict = {'startTime': now, 'active': None, 'ready': 0, 'conditions': [condition],
                            'uncountedTerminatedPods': {}}
        if succeeded:
            status.update(succeeded=1, completionTime=now)
        else:
            status.update(failed=1)
        return self.patch_status('batch/v1/jobs', namespace, name, status)

    def mark_deployment_available(self, namespace: str, name: str) -> JsonDict:
        """Simulate the Deployment controller + kubelet rolling a Deployment out and making it available."""
        deployment = self.get('apps/v1/deployments', namespace, name)
        if deployment is None:
            raise self._def('apps/v1/deployments').not_found(name)
        replicas = deployment['spec'].get('replicas', 1)
        now = timestamp()
        status = {
            'observedGeneration': deployment['metadata'].get('generation', 1), 'replicas': replicas,
            'updatedReplicas': replicas, 'readyReplicas': replicas, 'availableReplicas': replicas,
            'conditions': [
                {'type': 'Available', 'status': 'True', 'reason': 'MinimumReplicasAvailable',
                 'message': 'Deployment has minimum availability.', 'lastUpdateTime': now,
                 'lastTransitionTime': now},
                {'type': 'Progressing', 'status': 'True', 'reason': 'NewReplicaSetAvailable',
                 'message': f'ReplicaSet "{name}" has successfully progressed.', 'lastUpdateTime': now,
                 'lastTransitionTime': now}]}
        return self.patch_status('apps/v1/deployments', namespace, name, status)

    def collect_garbage(self) -> int:
        """
        One full pass of the garbage collector that this apiserver does NOT have (kube-controller-manager).

        Orphans dependents of objects with the ``orphan`` finalizer, deletes dependents of objects in
        foreground deletion and of owners that are gone, and removes the GC finalizers when done.
        Returns the number of objects deleted. Tests call it explicitly to simulate a full cluster.
        """
        deleted = 0
        for _ in range(20):  # until stable
            progress = False
            live: dict[str, tuple[ResourceDef, JsonDict]] = {}
            for rd in list(self._defs.values()):
                if self._storage(rd) is rd and rd.group != 'events.k8s.io':
                    for obj in self._all_live(rd):
                        live[obj['metadata']['uid']] = (rd, obj)
            for rd, obj in live.values():
                meta = obj['metadata']
                refs = meta.get('ownerReferences') or []
                if refs and all(ref.get('uid') not in live for ref in refs) and not meta.get('deletionTimestamp'):
                    self._delete(rd, meta.get('namespace'), meta['name'], {'propagationPolicy': 'Background'})
                    deleted, progress = deleted + 1, True
            for rd, obj in live.values():
                meta = obj['metadata']
                finalizers = meta.get('finalizers') or []
                if not meta.get('deletionTimestamp') or not {'orphan', 'foregroundDeletion'} & set(finalizers):
                    continue
                dependents = [(drd, dep) for drd, dep in live.values()
                              if any(r.get('uid') == meta['uid'] for r in dep['metadata'].get('ownerReferences') or [])
                              and self._live(drd, dep['metadata'].get('namespace'), dep['metadata']['name'])]
                for drd, dep in dependents:
                    dmeta = dep['metadata']
                    if 'orphan' in finalizers:
                        refs = [r for r in dmeta.get('ownerReferences') or [] if r.get('uid') != meta['uid']]
                        self.patch_object(drd.qualified, dmeta.get('namespace'), dmeta['name'],
                                          {'metadata': {'ownerReferences': refs or None}},
                                          manager='generic-garbage-collector')
                    elif not dmeta.get('deletionTimestamp'):
                        self._delete(drd, dmeta.get('namespace'), dmeta['name'], {'propagationPolicy': 'Foreground'})
                        deleted += 1
                release = 'orphan' in finalizers or not any(
                    self._live(drd, d['metadata'].get('namespace'), d['metadata']['name']) for drd, d in dependents)
                if release:
                    kept = [f for f in finalizers if f not in ('orphan', 'foregroundDeletion')]
                    self.patch_object(rd.qualified, meta.get('namespace'), meta['name'],
                                      {'metadata': {'finalizers': kept or None}}, manager='generic-garbage-collector')
                    progress = True
            if not progress:
                break
        return deleted

    def finalize_namespace(self, name: str) -> bool:
        """Simulate the namespace controller: delete the content, then the namespace. True if it is gone."""
        namespaces = self._def('v1/namespaces')
        ns = self._live(namespaces, None, name)
        if ns is None:
            return True
        if not ns['metadata'].get('deletionTimestamp'):
            self._delete(namespaces, None, name, {})
        left = 0
        for rd in list(self._defs.values()):
            if not rd.namespaced or self._storage(rd) is not rd:
                continue
            for obj in self._all_live(rd):
                if obj['metadata'].get('namespace') == name:
                    if not obj['metadata'].get('deletionTimestamp'):
                        self._delete(rd, name, obj['metadata']['name'], {'propagationPolicy': 'Background'})
                    left += self._live(rd, name, obj['metadata']['name']) is not None
        if left:
            return False
        ns = self._live(namespaces, None, name)
        if ns is not None:
            self._write_ex(namespaces, None, name, {'spec': {'finalizers': []}}, manager='namespace-controller',
                           subresource='finalize', put=True)
        return self._live(namespaces, None, name) is None
