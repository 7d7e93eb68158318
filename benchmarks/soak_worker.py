"""One process of the soak (started by soak.py; not run by hand).

Reads a JSON line from stdin: the session's keywords from the local server, the Redis URL
and key prefix of the shared store, the threads, the interval between two requests of a
thread, the run's length and the path of its outcome file. Builds one
``ClientCredentialsSession`` with a ``RedisTokenStore``, prints ``ready``, reads the start
time (monotonic) from stdin, and runs its threads until the end. Each API request is one
line of the outcome file: ``started ended result`` (result: the status code, or the
exception's type name). The file is written as the run goes, so the process's memory does
not grow with the run.

A watchdog thread ends the process with exit code 3 (after dumping every thread's stack to
stderr) when a request has been in progress for longer than ``hang_after`` seconds.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from reqcc import ClientCredentialsSession
from reqcc.stores import RedisTokenStore


def main() -> int:
    """Run one soak process as stdin tells."""
    logging.getLogger("reqcc").addHandler(logging.NullHandler())
    config: dict[str, Any] = json.loads(sys.stdin.readline())
    store = RedisTokenStore(url=config["redis_url"], prefix=config["prefix"], lease_timeout=10.0)
    session = ClientCredentialsSession(**config["credentials"], scopes=["books.read"], token_store=store)
    url = config["credentials"]["base_url"] + "books"
    threads, interval = int(config["threads"]), float(config["interval"])
    timeout, hang_after = float(config["request_timeout"]), float(config["hang_after"])
    busy_since = [0.0] * threads  # 0.0: not in a request
    lock = threading.Lock()
    out = open(config["outcomes"], "w", buffering=1 << 16)  # closed at the end
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    end = start + float(config["seconds"])

    def run(index: int) -> None:
        n = 0
        while True:
            due = start + interval * index / threads + n * interval
            n += 1
            if due >= end:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            t0 = busy_since[index] = time.monotonic()
            try:
                result = str(session.get(url, timeout=timeout).status_code)
            except Exception as exc:  # a failure is data here
                result = type(exc).__name__
            t1 = time.monotonic()
            busy_since[index] = 0.0
            with lock:
                out.write(f"{t0:.6f} {t1:.6f} {result}\n")

    def watchdog() -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            stuck = [i for i, since in enumerate(busy_since) if since and now - since > hang_after]
            if stuck:
                print(f"soak worker {os.getpid()}: threads {stuck} in one request for over "
                      f"{hang_after:g} s; stacks:", file=sys.stderr, flush=True)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                with lock:
                    out.flush()
                os._exit(3)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    threading.Thread(target=watchdog, daemon=True).start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with lock:
        out.close()
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
