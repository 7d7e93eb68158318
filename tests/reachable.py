"""What an error reporter could walk to from an exception or a response: for leak checks."""

from __future__ import annotations

import contextlib
import types

import requests

__all__ = ["reachable_text"]


def reachable_text(*roots: object, limit: int = 50_000) -> str:
    """The repr of every object reachable from ``roots`` through attributes, args and containers.

    Not through frames or tracebacks (locals are the reporter's own business), modules,
    classes or functions. Bounded: the walk stops at ``limit`` objects.
    """
    skip = (types.FrameType, types.TracebackType, types.ModuleType, type, types.FunctionType,
            types.MethodType, types.BuiltinFunctionType)
    seen: set[int] = set()
    texts: list[str] = []
    queue: list[object] = list(roots)
    while queue and len(seen) < limit:
        item = queue.pop()
        if id(item) in seen or isinstance(item, skip):
            continue
        seen.add(id(item))
        if isinstance(item, (str, bytes, bytearray)):
            texts.append(item if isinstance(item, str) else bytes(item).decode("latin-1"))
            continue
        if isinstance(item, (int, float, bool)) or item is None:
            continue
        with contextlib.suppress(Exception):  # a half-closed urllib3 object may not repr
            texts.append(repr(item))
        if isinstance(item, dict):
            queue.extend(item.keys())
            queue.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            queue.extend(item)
        if isinstance(item, BaseException):
            queue.extend((item.args, item.__cause__, item.__context__))
        for name in getattr(type(item), "__slots__", ()):
            queue.append(getattr(item, name, None))
        try:
            queue.extend(vars(item).values())
        except TypeError:
            pass
        if isinstance(item, requests.structures.CaseInsensitiveDict):
            queue.extend(item.items())
    return "\n".join(texts)
