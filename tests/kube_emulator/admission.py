"""What happens to an object before it is stored: for custom resources the CRD schema (pruning with
``fieldValidation`` Strict/Warn/Ignore, defaulting, validation, CEL); for built-ins the metadata rules and
the per-kind hook ``_kind_<group>_<plural>`` (:mod:`.kind_rules`, :mod:`.crds`); and the two admission
plugins that matter to operators: NamespaceLifecycle and ServiceAccount.
"""

from __future__ import annotations

from .cel import schema_cel
from .errors import ApiError, FieldError, bad_request
from .json_values import MISSING, JsonDict
from .metadata import meta_errors
from .resources import ResourceDef
from .schema import schema_default, schema_prune, schema_validate
from .state import EmulatorState


class AdmissionMixin(EmulatorState):
    """Validation, defaulting and admission of every write."""

    __slots__ = ()

    def _normalize(self, rd: ResourceDef, storage: ResourceDef, obj: JsonDict, old: JsonDict | None, *,
                   validation: str, subresource: str | None = None) -> list[str]:
        name = obj['metadata'].get('name') or ''
        warnings: list[str] = []
        errors: list[FieldError] = []
        if storage.custom:
            pruned: list[str] = []
            if storage.schema is not None:
                pruned_obj = schema_prune(obj, storage.schema, '', pruned, root=True)
                obj.clear()
                obj.update(schema_default(pruned_obj, storage.schema))
            if pruned and validation == 'Strict':
                raise bad_request('strict decoding error: ' + ', '.join(f'unknown field "{p}"' for p in pruned))
            if validation != 'Ignore':
                warnings += [f'unknown field "{p}"' for p in pruned]
            errors += meta_errors(obj, 'subdomain')
            if storage.schema is not None:
                # CEL sees only name/generateName of metadata, as in the apiserver.
                def cel_view(o: JsonDict) -> JsonDict:
                    meta = {k: v for k, v in (o.get('metadata') or {}).items() if k in ('name', 'generateName')}
                    return {**o, 'metadata': meta}
                schema_errors: list[FieldError] = []
                schema_validate(cel_view(obj), storage.schema, '', schema_errors)
                errors += schema_errors
                if any('must be of type' in e.detail for e in schema_errors):  # blocking: CEL is skipped
                    errors.append(FieldError('<nil>', 'Invalid', 'some validation rules were not checked because '
                                             'the object was invalid; correct the existing errors to complete '
                                             'validation', None))
                else:
                    schema_cel(cel_view(obj), storage.schema, '', errors, MISSING if old is None else cel_view(old))
        else:
            hook = getattr(self, f'_kind_{storage.group.replace(".", "_")}_{storage.plural}', None)
            style = {('', 'namespaces'): 'label', ('', 'services'): 'dns1035',
                     ('', 'events'): 'any'}.get((storage.group, storage.plural), 'subdomain')
            errors += meta_errors(obj, style)
            if hook is not None:
                errors += hook(obj, old, requested=rd, subresource=subresource)
        if errors:
            raise rd.invalid(name, errors)
        return warnings

    def _admit_namespace(self, rd: ResourceDef, namespace: str | None, name: str) -> None:
        """The NamespaceLifecycle admission plugin (enabled by default in kube-apiserver)."""
        ns = self._live(self._def('v1/namespaces'), None, namespace or '')
        if ns is None:
            raise ApiError(404, 'NotFound', f'namespaces "{namespace}" not found',
                           {'name': namespace, 'kind': 'namespaces'})
        if ns['metadata'].get('deletionTimestamp'):
            why = f'unable to create new content in namespace {namespace} because it is being terminated'
            raise rd.forbidden(name, why, {'reason': 'NamespaceTerminating', 'message': why,
                                           'field': 'metadata.namespace'})

    def _admit_service_account(self, pod: JsonDict) -> None:
        """The ServiceAccount admission plugin: the account must exist (no controller-manager creates it)."""
        spec = pod['spec']
        account = spec.setdefault('serviceAccountName', spec.get('serviceAccount') or 'default')
        spec['serviceAccount'] = account
        namespace = pod['metadata'].get('namespace')
        if self._live(self._def('v1/serviceaccounts'), namespace, account) is None:
            raise self._def('v1/pods').forbidden(
                pod['metadata'].get('name') or '',
                f'error looking up service account {namespace}/{account}: serviceaccount "{account}" not found')
