"""Starting afresh in a forked child: one registry of per-process state, reset at the fork.

A process forked from one that used reqcc inherits every object with everything in it:
locks (maybe held by a parent thread that does not exist in the child), the token request
in progress (whose leader is not there either), sessions whose pooled sockets are shared
with the parent, and random generators (copies: every worker forked from one parent
would jitter its backoff in lockstep). Each object that holds such state registers a
reset here, when it is made (:func:`register`), and one ``os.register_at_fork`` hook runs
all of them in the child, right after the fork, before any other code of the child.

A reset runs while the child has one thread: it must *replace* a lock (a parent thread
may have held it; no thread here would ever release it), never release or wait for one,
and do no I/O. What stays valid in the child (the token in use, DPoP nonces, the 401
cool-down's deadlines on the same monotonic clock) is kept.

The registry is the one piece of module-level state in reqcc, and the standard pattern
for an at-fork hook (:mod:`logging` keeps its handlers the same way): it holds only weak
references, so it keeps no object alive, and it shares nothing between managers but the
hook itself. A process that forks without running Python's at-fork hooks (uWSGI workers
without ``py-call-uwsgi-fork-hooks`` or ``lazy-apps``) does not get the resets.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable

from ._log import log

__all__ = ["register"]

# Module-level on purpose, and the only such state (see the module docstring): one
# at-fork hook per process needs one place to find what to reset. Each entry is a weak
# reference to the object and its reset's plain function (a class attribute: it keeps no
# instance alive); a collected object's entry removes itself. Keys give the registration
# order, which the resets keep. Not WeakMethod: its own callback raises at interpreter
# exit ("Exception ignored in ... _cb") when the method's function goes first.
_resets: dict[int, tuple[weakref.ref[object], Callable[[object], None]]] = {}
_keys = itertools.count()


def register(reset: Callable[[], None]) -> None:
    """Run ``reset`` (a bound method) in every process forked from this one, right after the fork.

    Only a weak reference to the method's object is kept: registering keeps no object
    alive, and a collected object's reset is forgotten. Register once per object, in its
    constructor.

    :param reset: a bound method that replaces its object's per-process state (new locks,
        new sessions, reseeded generators) and nothing else.
    :raises TypeError: ``reset`` is not a bound method.
    """
    owner, function = getattr(reset, "__self__", None), getattr(reset, "__func__", None)
    if owner is None or function is None:
        raise TypeError(f"fork_safety.register() takes a bound method, not {type(reset).__name__}")
    key = next(_keys)  # atomic: registering threads never share a key
    resets = _resets  # the callback holds the dict, not the module global (gone at exit)

    def forget(_: weakref.ref[object]) -> None:
        resets.pop(key, None)

    _resets[key] = (weakref.ref(owner, forget), function)


def _after_fork_in_child() -> None:
    # The child has one thread here. Each reset runs even when another fails: one broken
    # object must not leave the others with a lock a parent thread held.
    for ref, function in _resets.copy().values():  # a copy: a collection may drop entries meanwhile
        owner = ref()
        if owner is None:
            continue
        try:
            function(owner)
        except Exception:  # its type only: a repr might show a secret
            log.exception("resetting a %s after fork failed", type(owner).__name__)


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only where os.fork is too
    os.register_at_fork(after_in_child=_after_fork_in_child)
