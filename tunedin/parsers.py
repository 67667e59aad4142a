"""The API's JSON parser: any body it cannot turn into data is a 400 with a reason, never a 500.

DRF's JSONParser turns a ValueError (bad syntax, bad UTF-8, an integer past Python's digit limit)
into a ParseError, but lets a RecursionError (about 2 KB of nested brackets) escape as a server
error. Nesting is also bounded well below the recursion limit, so that no code further on has to
walk a deep structure. Every API view parses JSON with this one
(REST_FRAMEWORK's DEFAULT_PARSER_CLASSES); a view that lists its own parsers must list this one.
"""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# The API's deepest legitimate body is a list of objects holding a list: far below this.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"


def json_depth_exceeds(data, limit: int) -> bool:
    """Whether lists and objects nest deeper than `limit` (iteratively: no recursion of its own)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        pending.extend((item, depth + 1) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(TOO_DEEP)
        return data
