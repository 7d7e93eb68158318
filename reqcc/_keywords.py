"""Keyword arguments checked by name, and signatures that list every keyword.

The session, the adapter and :func:`~reqcc.mount` take the manager's keywords through
``**kwargs``. :func:`passes_keywords` gives such a callable a run-time signature made of
its own parameters followed by the manager's (read from the manager's signature, the one
source: a keyword added there shows up everywhere), so ``help()`` and
:func:`inspect.signature` list them all with their defaults; and it turns an unknown
keyword into a ``TypeError`` that names what the user called, the keyword and the closest
valid ones.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

__all__ = ["passes_keywords", "unexpected_keywords"]

P = ParamSpec("P")
R = TypeVar("R")


def unexpected_keywords(called: str, unknown: Iterable[str], valid: Iterable[str]) -> TypeError:
    """Return the ``TypeError`` for ``unknown`` keywords given to ``called`` (e.g. ``"mount"``).

    Each unknown keyword comes with the closest ``valid`` ones, if any are close. Only the
    keywords' names are shown, never their values.
    """
    import difflib  # only when a keyword is wrong: not a cost of importing reqcc

    valid = sorted(valid)
    unknown = list(unknown)
    parts = []
    for name in unknown:
        close = " or ".join(repr(c) for c in difflib.get_close_matches(name, valid, n=3, cutoff=0.6))
        if len(unknown) == 1:
            parts.append(f"{name!r}; did you mean {close}?" if close else repr(name))
        else:
            parts.append(f"{name!r} (did you mean {close}?)" if close else repr(name))
    noun = "an unexpected keyword argument" if len(unknown) == 1 else "unexpected keyword arguments"
    return TypeError(f"{called}() got {noun} {', '.join(parts)}")


def _own_keywords(source: Callable[..., Any]) -> list[inspect.Parameter]:
    """The keyword-only parameters of ``source`` (a class or a function), in order."""
    return [
        parameter
        for parameter in inspect.signature(source).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def passes_keywords(
    source: Callable[..., Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function or an ``__init__`` whose unknown keywords are an error.

    With ``source`` (the class or function the ``**kwargs`` are passed on to), the
    decorated callable's run-time signature is its own parameters, without ``**kwargs``,
    followed by ``source``'s keyword-only parameters that it does not have itself, with
    their annotations and defaults. A keyword that is in neither raises
    :func:`unexpected_keywords`' ``TypeError`` before the body runs; for an ``__init__``
    it names the class that was called (``type(self).__name__``).

    The static signature is left as it is (``**kwargs: Unpack[...]`` for type checkers).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        own = inspect.signature(function)
        parameters = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if source is not None:
            names = {p.name for p in parameters}
            parameters += [p for p in _own_keywords(source) if p.name not in names]
        signature = own.replace(parameters=parameters)
        is_init = function.__name__ == "__init__"
        valid = frozenset(
            p.name
            for p in parameters[1 if is_init else 0 :]
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )

        @functools.wraps(function)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            if not valid.issuperset(kwargs):
                called = type(args[0]).__name__ if is_init and args else function.__name__
                raise unexpected_keywords(called, [k for k in kwargs if k not in valid], valid)
            return function(*args, **kwargs)

        checked.__signature__ = signature  # type: ignore[attr-defined]
        return checked

    return decorate
