"""ctx.state: dict / list subclasses that record every mutation as RFC 6902 ops.

Rules (same as the TypeScript SDK, see sdk/README.md):
- Values are validated and copied on the way in (assigning a dict stores a copy; later changes to
  the original are not seen). Non-JSON values raise StateValueError (a TypeError).
- Each op's value is serialized at mutation time, so replaying the ops in order on the previous
  state gives exactly the new state. A small change never re-serializes the whole state.
- Nested containers become tracked lazily, on first access (a shallow copy of that one level), so
  a 50 MB state loads at json.loads speed. Reads of plain values run at dict speed.
- The tree never aliases: a container sits at one place, found by walking parent links (list
  indexes are re-checked by identity, since insert/pop/sort move them). Mutating a container that
  was removed from the state changes only that container and records nothing.
- copy(), `+`, `|` and slices of plain values return detached plain copies.
"""

from __future__ import annotations

from .json_value import copy_in, decode, encode, escape_token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, SupportsIndex

    from .json_value import JsonInput, JsonValue

    # What a tracked container holds, as a type checker sees it: JSON values, read as Any (like
    # json.loads) so `ctx.state["n"] += 1` type-checks; what goes in is checked when it is stored.
    _DictBase = dict[str, Any]
    _ListBase = list[Any]
    _Op = list[Any]  # [op, path, value JSON text or None]
else:
    _DictBase = dict
    _ListBase = list

_MISSING: Any = object()
_PRIMITIVES = (str, int, float, bool, type(None))


def _same(old: object, new: object) -> bool:
    if old is new:
        return True
    t = type(new)
    return t is type(old) and t in _PRIMITIVES and old == new


def _too_many(count: float, length: float) -> bool:
    return count > max(16, length)


class StateTracker:
    """Owns the root container and the pending ops of the current turn."""

    __slots__ = ("root", "ops")

    root: TrackedDict
    ops: list[_Op]

    def __init__(self, initial: dict[str, JsonValue]) -> None:
        """Takes ownership of `initial` (a freshly decoded JSON object); records nothing."""
        self.ops = []
        self.root = _adopt_root(initial, self)

    def replace(self, value: object, owned: bool = False) -> None:
        """Replaces the whole state with a copy of `value`; drops older pending ops.

        `owned=True` (a dict freshly decoded from JSON that nobody else holds) skips the copy.
        """
        if not isinstance(value, dict):
            raise TypeError("state must be a dict")
        copy: JsonValue
        if owned and type(value) is dict:
            copy, text = value, encode(value)
        else:
            copy, text = copy_in(value, "")
        assert type(copy) is dict
        self.root = _adopt_root(copy, self)
        self.ops = [["replace", "", text]]

    def take_ops(self) -> str | None:
        """The pending ops as JSON array text (cleared), or None when there are none."""
        parts = self.take_op_parts()
        return None if parts is None else "".join(parts)

    def take_op_parts(self) -> list[str] | None:
        """Like take_ops() but as a list of str pieces, so a 50 MB value is never concatenated."""
        if not self.ops:
            return None
        parts = ["["]
        for i, (op, path, text) in enumerate(self.ops):
            parts.append(('{"op":"' if i == 0 else ',{"op":"') + op + '","path":' + encode(path))
            if text is None:
                parts.append("}")
            else:
                parts.append(',"value":')
                parts.append(text)
                parts.append("}")
        parts.append("]")
        self.ops = []
        return parts

    def record(self, op: str, path: str, text: str | None = None) -> None:
        ops = self.ops
        if op == "replace" and ops:
            last = ops[-1]
            if last[1] == path and last[0] != "remove":
                last[2] = text  # add+replace -> add, replace+replace -> replace
                return
        ops.append([op, path, text])


def _adopt(raw: dict[str, Any] | list[Any], tracker: StateTracker, parent: TrackedDict | TrackedList, key: str | int) -> TrackedDict | TrackedList:
    """Wraps a plain dict/list (shallow copy of one level) and links it to its parent."""
    node = TrackedDict(raw) if type(raw) is dict else TrackedList(raw)
    node._tr = tracker
    node._parent = parent
    node._key = key
    return node


def _adopt_root(raw: dict[str, Any], tracker: StateTracker) -> TrackedDict:
    node = TrackedDict(raw)
    node._tr = tracker
    node._parent = None
    node._key = None
    return node


def _index_of(items: TrackedList, node: object) -> int:
    for i, item in enumerate(list.__iter__(items)):
        if item is node:
            return i
    return -1


def _path(node: TrackedDict | TrackedList) -> str | None:
    """JSON Pointer of a tracked container, or None when it is no longer part of the state."""
    tokens: list[str] = []
    while True:
        parent = node._parent
        if parent is None:
            if node is not node._tr.root:
                return None
            break
        key: Any = node._key  # an int under a list, a str under a dict
        if isinstance(parent, TrackedList):
            if not (key < list.__len__(parent) and list.__getitem__(parent, key) is node):
                key = _index_of(parent, node)
                if key < 0:
                    return None
                node._key = key
            tokens.append(str(key))
        else:
            if dict.get(parent, key, None) is not node:
                return None
            tokens.append(escape_token(key))
        node = parent
    if not tokens:
        return ""
    tokens.reverse()
    return "/" + "/".join(tokens)


def _plain(node: object) -> Any:
    return decode(encode(node))


class _PlainCopies:
    """Copies of tracked containers are plain and detached (mutating them records nothing)."""

    __slots__ = ()

    def copy(self) -> Any:
        """A plain, detached deep copy (dict or list): changing it records nothing."""
        return _plain(self)

    def __copy__(self) -> Any:
        return _plain(self)

    def __deepcopy__(self, memo: object = None) -> Any:
        return _plain(self)


class TrackedDict(_PlainCopies, _DictBase):
    """A dict in ctx.state. Behaves like dict; mutations are recorded."""

    __slots__ = ("_tr", "_parent", "_key")

    _tr: StateTracker
    _parent: TrackedDict | TrackedList | None
    _key: str | int | None

    # ---- reads (wrap nested containers on the way out) ----

    def _child(self, key: str, value: Any) -> Any:
        t = type(value)
        if t is dict or t is list:
            value = _adopt(value, self._tr, self, key)
            dict.__setitem__(self, key, value)
        return value

    def __getitem__(self, key: str) -> Any:
        return self._child(key, dict.__getitem__(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        return default if value is _MISSING else self._child(key, value)

    def __iter__(self) -> Iterator[str]:
        # Defined so dict(state) / {**state} go through __getitem__ rather than raw storage.
        return dict.__iter__(self)

    def values(self) -> list[Any]:  # type: ignore[override]  # a list, not a view
        return [self._child(k, v) for k, v in list(dict.items(self))]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]  # a list, not a view
        return [(k, self._child(k, v)) for k, v in list(dict.items(self))]

    # ---- writes ----

    def _record(self, op: str, key: str, text: str | None = None) -> None:
        base = _path(self)
        if base is not None:
            self._tr.record(op, base + "/" + escape_token(key), text)

    def __setitem__(self, key: str, value: JsonInput) -> None:
        if type(key) is not str:
            raise TypeError(f"state keys must be strings, not {type(key).__name__}")
        old = dict.get(self, key, _MISSING)
        if old is not _MISSING and _same(old, value):
            return
        base = _path(self)
        path = (base or "") + "/" + escape_token(key)
        copy, text = copy_in(value, path)
        dict.__setitem__(self, key, copy)
        if base is not None:
            self._tr.record("add" if old is _MISSING else "replace", path, text)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._record("remove", key)

    def pop(self, key: str, *default: Any) -> Any:
        if dict.__contains__(self, key):
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, Any]:
        key, value = dict.popitem(self)
        self._record("remove", key)
        return key, value

    def clear(self) -> None:
        if dict.__len__(self):
            dict.clear(self)
            base = _path(self)
            if base is not None:
                self._tr.record("replace", base, "{}")

    def update(self, *args: Any, **kwargs: JsonInput) -> None:
        if args:
            (other,) = args
            if hasattr(other, "keys"):
                for key in list(other.keys()):
                    self[key] = other[key]
            else:
                for key, value in other:
                    self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[override]
        self.update(other)
        return self

    # ---- copies are plain and detached ----

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return (dict, (_plain(self),))

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        result: dict[str, Any] = _plain(self)
        result.update(other)
        return result

    def __ror__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        result = dict(other)
        result.update(_plain(self))
        return result


class TrackedList(_PlainCopies, _ListBase):
    """A list in ctx.state. Behaves like list; mutations are recorded."""

    __slots__ = ("_tr", "_parent", "_key")

    _tr: StateTracker
    _parent: TrackedDict | TrackedList | None
    _key: str | int | None

    # ---- reads ----

    def _child(self, index: int, value: Any) -> Any:
        t = type(value)
        if t is dict or t is list:
            value = _adopt(value, self._tr, self, index)
            list.__setitem__(self, index, value)
        elif t is TrackedDict or t is TrackedList:
            value._key = index
        return value

    def _index(self, index: SupportsIndex, insert: bool = False) -> int:
        n = list.__len__(self)
        i = index if type(index) is int else index.__index__()
        if insert:
            return max(0, n + i) if i < 0 else min(i, n)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("list index out of range")
        return i

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if type(index) is slice:
            for i in range(*index.indices(list.__len__(self))):
                self._child(i, list.__getitem__(self, i))
            return list.__getitem__(self, index)
        i = self._index(index)
        return self._child(i, list.__getitem__(self, i))

    def __iter__(self) -> Iterator[Any]:
        for i, value in enumerate(list.__iter__(self)):
            yield self._child(i, value)

    def __reversed__(self) -> Iterator[Any]:
        for i in range(list.__len__(self) - 1, -1, -1):
            yield self._child(i, list.__getitem__(self, i))

    # ---- writes ----

    def _base(self) -> str | None:
        return _path(self)

    def _copy(self, value: object, base: str | None, index: int) -> tuple[JsonValue, str]:
        return copy_in(value, f"{base or ''}/{index}")

    def _whole(self, base: str) -> None:
        self._tr.record("replace", base, encode(self))

    def _record_changed(self, base: str | None, before: list[Any]) -> None:
        if base is None:
            return
        changed = [i for i, (a, b) in enumerate(zip(before, list.__iter__(self))) if a is not b]
        if _too_many(len(changed), list.__len__(self) / 2):
            self._whole(base)
        else:
            for i in changed:
                self._tr.record("replace", f"{base}/{i}", encode(list.__getitem__(self, i)))

    def _splice(self, start: int, delete_count: int, values: list[tuple[JsonValue, str]]) -> None:
        """Replaces items[start:start+delete_count] with `values` (copies, texts) and records it."""
        base = self._base()
        list.__setitem__(self, slice(start, start + delete_count), [copy for copy, _ in values])
        if base is None:
            return
        common = min(delete_count, len(values))
        if _too_many(max(delete_count, len(values)) - common, list.__len__(self)):
            self._whole(base)
            return
        record = self._tr.record
        for i in range(common):
            record("replace", f"{base}/{start + i}", values[i][1])
        for _ in range(common, delete_count):
            record("remove", f"{base}/{start + common}")
        for i in range(common, len(values)):
            record("add", f"{base}/{start + i}", values[i][1])

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        if isinstance(index, slice):
            n = list.__len__(self)
            start, stop, step = index.indices(n)
            items = list(value)
            base = self._base()
            values = [self._copy(v, base, start + i) for i, v in enumerate(items)]
            if step == 1:
                self._splice(start, max(0, stop - start), values)
                return
            before = list(list.__iter__(self))
            list.__setitem__(self, index, [copy for copy, _ in values])
            self._record_changed(base, before)
            return
        i = self._index(index)
        if _same(list.__getitem__(self, i), value):
            return
        base = self._base()
        copy, text = self._copy(value, base, i)
        list.__setitem__(self, i, copy)
        if base is not None:
            self._tr.record("replace", f"{base}/{i}", text)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        if isinstance(index, slice):
            indexes = sorted(range(*index.indices(list.__len__(self))), reverse=True)
            if not indexes:
                return
            base = self._base()
            list.__delitem__(self, index)
            if base is None:
                return
            if _too_many(len(indexes), list.__len__(self)):
                self._whole(base)
            else:
                for i in indexes:
                    self._tr.record("remove", f"{base}/{i}")
            return
        i = self._index(index)
        base = self._base()
        list.__delitem__(self, i)
        if base is not None:
            self._tr.record("remove", f"{base}/{i}")

    def append(self, value: JsonInput) -> None:
        base = self._base()
        index = list.__len__(self)
        copy, text = self._copy(value, base, index)
        list.append(self, copy)
        if base is not None:
            self._tr.record("add", f"{base}/{index}", text)

    def extend(self, values: Iterable[JsonInput]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[JsonInput]) -> TrackedList:  # type: ignore[override, misc]
        self.extend(values)
        return self

    def __imul__(self, count: SupportsIndex) -> TrackedList:
        count = count.__index__()
        if count <= 0:
            self.clear()
        else:
            items = list(self)
            for _ in range(count - 1):
                self.extend(items)
        return self

    def insert(self, index: SupportsIndex, value: JsonInput) -> None:
        i = self._index(index, insert=True)
        base = self._base()
        copy, text = self._copy(value, base, i)
        list.insert(self, i, copy)
        if base is not None:
            self._tr.record("add", f"{base}/{i}", text)

    def pop(self, index: SupportsIndex = -1) -> Any:
        if not list.__len__(self):
            raise IndexError("pop from empty list")
        i = self._index(index)
        value = self[i]
        del self[i]
        return value

    def remove(self, value: object) -> None:
        del self[self.index(value)]

    def clear(self) -> None:
        if list.__len__(self):
            list.clear(self)
            base = self._base()
            if base is not None:
                self._tr.record("replace", base, "[]")

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        before = list(list.__iter__(self))
        list.sort(self, key=key, reverse=reverse)
        self._record_changed(self._base(), before)

    def reverse(self) -> None:
        before = list(list.__iter__(self))
        list.reverse(self)
        self._record_changed(self._base(), before)

    # ---- copies are plain and detached ----

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return (list, (_plain(self),))

    def __add__(self, other: Iterable[Any]) -> list[Any]:
        copy: list[Any] = _plain(self)
        return copy + list(other)

    def __radd__(self, other: Iterable[Any]) -> list[Any]:
        copy: list[Any] = _plain(self)
        return list(other) + copy

    def __mul__(self, count: SupportsIndex) -> list[Any]:
        copy: list[Any] = _plain(self)
        return copy * count


    __rmul__ = __mul__
