"""JSON values for agent state: validating copies, compact encoding, JSON Pointer escaping.

Uses the C accelerator `_json` directly: `import json` pulls in `re` and costs ~10 ms of start-up.
Type names come from `typing` only for type checkers (`TYPE_CHECKING` is False at run time, and
annotations are never evaluated), so typing costs no start-up either.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeAlias


#: A JSON value as the SDK hands it out (decoded state, answers, messages).
JsonValue: TypeAlias = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
#: A JSON object: what `on_message` receives and what `ctx.state` holds.
JsonObject: TypeAlias = dict[str, JsonValue]
if TYPE_CHECKING:
    #: What the SDK accepts as JSON (ctx.send content, state values): read-only views, so a
    #: `dict[str, int]` or a `list[str]` fits too. Tuples become lists, as with json.dumps.
    JsonInput: TypeAlias = None | bool | int | float | str | Sequence["JsonInput"] | Mapping[str, "JsonInput"]
else:  # the same at run time, without importing collections.abc
    JsonInput = None | bool | int | float | str | list | tuple | dict


try:
    import _json
except ImportError:  # pragma: no cover - interpreters without the accelerator
    _json = None  # type: ignore[assignment]

_INF = float("inf")


def _unsupported(value: object) -> None:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


encode: Callable[[object], str]
decode: Callable[[str | bytes | bytearray | memoryview], JsonValue]

if _json is not None:

    class _ScanContext:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float
        memo: dict[str, str] = {}

    _scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # any object with these attributes
    _encode_utf8 = _json.make_encoder(None, _unsupported, _json.encode_basestring, None, ":", ",", False, False, False)

    def encode(value: object) -> str:
        """Compact JSON text, non-ASCII kept as is; rejects NaN/Infinity and non-JSON objects."""
        try:
            return "".join(_encode_utf8(value, 0))
        except RecursionError:
            raise ValueError("circular reference or nesting too deep") from None

    def decode(text: str | bytes | bytearray | memoryview) -> JsonValue:
        """Parses one JSON document (str or UTF-8 bytes)."""
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")
        text = text.strip()
        try:
            value: JsonValue
            value, end = _scan(text, 0)
        except StopIteration:
            raise ValueError("invalid JSON") from None
        if end != len(text):
            raise ValueError(f"extra data after JSON value at offset {end}")
        return value

else:  # pragma: no cover
    import json as _std

    encode = _std.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_unsupported).encode
    decode = _std.loads


class StateValueError(TypeError):
    """A value that is not JSON was put into ctx.state."""


def _reason(value: object) -> str:
    if callable(value):
        return "functions cannot be stored in state"
    name = type(value).__name__
    if name in ("datetime", "date", "time"):
        return f"{name} is not JSON (store value.isoformat())"
    if isinstance(value, (set, frozenset)):
        return "sets are not JSON (use a list)"
    if isinstance(value, (bytes, bytearray)):
        return "bytes are not JSON (decode or base64 them first)"
    return f"{name} objects are not JSON (use dict, list, str, int, float, bool or None)"


def copy_in(value: Any, pointer: str) -> tuple[JsonValue, str]:
    """Validates `value` as JSON and returns (copy, json_text); the copy shares nothing with `value`.

    Containers go through one C-level encode + decode. As with json.dumps, tuples become lists and
    int/float/bool/None dict keys become strings. Raises StateValueError (a TypeError) naming
    `pointer` for functions, NaN/Infinity, sets, bytes, class instances, circular references.
    """
    t = type(value)
    if t is str:
        return value, encode(value)
    if t is bool:
        return value, "true" if value else "false"
    if t is int:
        return value, int.__repr__(value)
    if value is None:
        return None, "null"
    if t is float:
        if value != value or value == _INF or value == -_INF:
            raise StateValueError(f"invalid state value at {pointer or '/'}: {value!r} is not a finite number")
        return value, float.__repr__(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            text = encode(value)
        except (TypeError, ValueError) as error:
            raise StateValueError(f"invalid state value at {pointer or '/'}: {error}") from None
        except RecursionError:
            raise StateValueError(f"invalid state value at {pointer or '/'}: nested too deeply") from None
        return decode(text), text
    if isinstance(value, bool):
        return bool(value), "true" if value else "false"
    if isinstance(value, int):
        plain = int(value)
        return plain, int.__repr__(plain)
    if isinstance(value, float):
        return copy_in(float(value), pointer)
    if isinstance(value, str):
        text = str.__str__(value)
        return text, encode(text)
    raise StateValueError(f"invalid state value at {pointer or '/'}: {_reason(value)}")


def escape_token(token: str) -> str:

    """RFC 6901 escaping of one reference token."""
    if "~" in token or "/" in token:
        return token.replace("~", "~0").replace("/", "~1")
    return token
