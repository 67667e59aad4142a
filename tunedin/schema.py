"""The API's contract with its clients: input fields that accept exactly what the OpenAPI schema
says, and the error responses every operation documents.

Strict fields. DRF coerces input on purpose: "12" and 12.0 become 12, "yes" and 1 become true,
12 becomes "12", whitespace is stripped before max_length is checked, and an empty `?n=` reads
as absent. The schema promises an integer, a boolean, a string of at most N characters, so
those answer 400 here. In a query string or a form every value is text: there an integer is
ASCII digits and a boolean is `true` or `false`.

Error responses. `error_responses_postprocess` (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])
adds to every operation the 4xx answers that DRF gives whatever the view does: 400 with the
field errors where it takes a body or query parameters, 401 where it reads credentials, 403 for
a session without its CSRF token on a write, 404 where the path names an object, 415 for a body
that is not JSON, 429 from the throttles. A view documents what only it knows (`responses=` in
`extend_schema`, a description is enough: the hook adds the body); an answer a view documents
with a body is left as it is.
"""

from __future__ import annotations

import re

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import html

ID_MAX = 2**63 - 1  # a bigint primary key

_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
_BOOLEAN_TEXT = {"true": True, "false": False}


class _StrictValueMixin:
    """In a query string or a form an empty value is a value (rejected), not an absent one."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary):
            return self.text_value(dictionary.get(self.field_name, empty))
        return super().get_value(dictionary)

    def text_value(self, value):
        return value


class StrictIntegerField(_StrictValueMixin, serializers.IntegerField):
    """A JSON integer (not "12", 12.0 or true), or ASCII digits in a query string or form."""

    def text_value(self, value):
        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
            return int(value)
        return value

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictBooleanField(_StrictValueMixin, serializers.BooleanField):
    """JSON true or false, or `true` / `false` in a query string or form."""

    def text_value(self, value):
        return _BOOLEAN_TEXT.get(value, value) if isinstance(value, str) else value

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(_StrictValueMixin, serializers.CharField):
    """A string (not a number) of at most max_length characters as sent, before stripping."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictChoiceField(_StrictValueMixin, serializers.ChoiceField):
    """One of the choices, as a string (not 1 for "1")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


def id_field(**kwargs) -> StrictIntegerField:
    """An object's primary key: a positive bigint."""
    return StrictIntegerField(min_value=1, max_value=ID_MAX, **kwargs)


# ----------------------------------------------------------------------------- error responses

ERROR_DETAIL = "ErrorDetail"
VALIDATION_ERROR = "ValidationError"
ERROR_SCHEMAS = {
    ERROR_DETAIL: {
        "type": "object",
        "description": "Why the request was refused.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    VALIDATION_ERROR: {
        "description": "What is wrong with the input: field name (`non_field_errors` for the "
        "whole object, `detail` for a body that is not JSON) -> messages; nested objects and "
        "lists give nested errors (list items by index); a list body gives one entry per item.",
        "oneOf": [
            {"$ref": "#/components/schemas/FieldErrors"},
            {"type": "array", "items": {"$ref": "#/components/schemas/FieldErrors"}},
        ],
    },
    "FieldErrors": {
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string"},
                {"type": "object"},
            ]
        },
    },
}
_STANDARD_ERRORS = {
    "400": ("invalid input", VALIDATION_ERROR),
    "401": ("missing, wrong or revoked credentials", ERROR_DETAIL),
    "403": ("not allowed", ERROR_DETAIL),
    "404": ("no such object (or not one you may see), or a path no route matches", ERROR_DETAIL),
    "415": ("the body is not JSON", ERROR_DETAIL),
    "429": ("too many requests: try again after Retry-After seconds", ERROR_DETAIL),
}
_UNSAFE_METHODS = {"post", "put", "patch", "delete"}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "seconds to wait before the next request",
    }
}


def _error_codes(*, method: str, operation: dict) -> dict[str, str]:
    """{status code: description} of the 4xx that DRF answers for this operation by itself."""
    parameters = operation.get("parameters", [])
    security = operation.get("security", [])
    codes = {"429": _STANDARD_ERRORS["429"][0]}
    if operation.get("requestBody") or any(p["in"] == "query" for p in parameters):
        codes["400"] = _STANDARD_ERRORS["400"][0]
    if operation.get("requestBody"):
        codes["415"] = _STANDARD_ERRORS["415"][0]
    if any(scheme for scheme in security):
        codes["401"] = _STANDARD_ERRORS["401"][0]
    if method in _UNSAFE_METHODS and any("cookieAuth" in scheme for scheme in security):
        codes["403"] = "CSRF check failed (session cookie without the CSRF token)"
    if any(p["in"] == "path" for p in parameters):
        codes["404"] = _STANDARD_ERRORS["404"][0]
    return codes


def _with_body(response: dict, *, code: str) -> dict:
    schema_name = _STANDARD_ERRORS[code][1]
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}
    if code == "404":
        # A path that matches no route (`/api/playlists/-1/`) is answered by the site's page.
        content["text/html"] = {"schema": {"type": "string"}}
    response.setdefault("content", content)
    if code == "429":
        response.setdefault("headers", _RETRY_AFTER)
    return response


def error_responses_postprocess(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation's 4xx answers, with their bodies;
    path ids documented as positive bigints."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, description in _error_codes(method=method, operation=operation).items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code in _STANDARD_ERRORS:
                    _with_body(response, code=code)
            operation["responses"] = dict(sorted(responses.items()))
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "path" and schema.get("type") == "integer":
                    schema.update(format="int64", minimum=1, maximum=ID_MAX)
    return result
