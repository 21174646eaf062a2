"""API failures rendered exactly as the ``Status`` objects of the real API server, and the field-level
errors (``field.Error``) that make up a 422 Invalid answer.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .json_values import JsonDict


class ApiError(Exception):
    """An API failure that is answered with a ``Status`` object and an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JsonDict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JsonDict:
        status: JsonDict = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                            'message': self.message, 'reason': self.reason, 'code': self.code}
        if self.details is not None:
            status['details'] = self.details
        return status


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field-level validation error, as ``field.Error`` in the apiserver."""
    field: str
    type: str  # Invalid, Required, Forbidden, NotSupported, TooLong, TooMany, Duplicate, NotFound
    detail: str = ''
    value: Any = None

    @property
    def cause_reason(self) -> str:
        return {'Invalid': 'FieldValueInvalid', 'Required': 'FieldValueRequired',
                'Forbidden': 'FieldValueForbidden', 'NotSupported': 'FieldValueNotSupported',
                'TooLong': 'FieldValueTooLong', 'TooMany': 'FieldValueTooMany',
                'Duplicate': 'FieldValueDuplicate', 'NotFound': 'FieldValueNotFound'}[self.type]

    @property
    def body(self) -> str:
        shown = json.dumps(self.value) if not isinstance(self.value, str) else f'"{self.value}"'
        match self.type:
            case 'Invalid':
                return f'Invalid value: {shown}: {self.detail}'
            case 'Required':
                return 'Required value' + (f': {self.detail}' if self.detail else '')
            case 'Forbidden':
                return f'Forbidden: {self.detail}'
            case 'NotSupported':
                return f'Unsupported value: {shown}: supported values: {self.detail}'
            case 'TooLong':
                return f'Too long: {self.detail}'
            case 'TooMany':
                return f'Too many: {shown}: {self.detail}'
            case 'NotFound':
                return f'Not found: {shown}'
            case _:
                return f'Duplicate value: {shown}'

    def __str__(self) -> str:
        return f'{self.field}: {self.body}'


def route_not_found() -> ApiError:
    return ApiError(404, 'NotFound', 'the server could not find the requested resource', {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, 'BadRequest', message)
