"""events.k8s.io/v1 and core/v1 Events share one storage, in two shapes (as the real conversion does).
"""

from __future__ import annotations

from .json_values import JsonDict

# events.k8s.io/v1 <-> core/v1 Event: one storage, two shapes (as the real conversion does).
_EVENT_RENAMES = (('regarding', 'involvedObject'), ('note', 'message'), ('reportingController', 'reportingComponent'),
                  ('deprecatedSource', 'source'), ('deprecatedFirstTimestamp', 'firstTimestamp'),
                  ('deprecatedLastTimestamp', 'lastTimestamp'), ('deprecatedCount', 'count'))


def event_to_core(obj: JsonDict) -> JsonDict:
    result = {k: v for k, v in obj.items() if k not in {a for a, _ in _EVENT_RENAMES}}
    for new, old in _EVENT_RENAMES:
        if new in obj:
            result[old] = obj[new]
    result['apiVersion'], result['kind'] = 'v1', 'Event'
    return result


def event_from_core(obj: JsonDict) -> JsonDict:
    result = {k: v for k, v in obj.items() if k not in {b for _, b in _EVENT_RENAMES}}
    for new, old in _EVENT_RENAMES:
        if old in obj:
            result[new] = obj[old]
    result['apiVersion'], result['kind'] = 'events.k8s.io/v1', 'Event'
    return result
