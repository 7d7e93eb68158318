"""One process of the long-outage benchmark's fleet (started by outage.py; not run by hand).

Reads a JSON line from stdin (the server's URLs, the store, the token lifetime, the plan
relative to its start), builds a reqcc session sharing tokens through that store, obtains
its first token, prints ``ready``, reads the start time (monotonic, one clock for every
process on Linux) from stdin, runs the plan's threads (outage_load.py) and prints one JSON
line: its outcomes and how many threads hung.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE), str(HERE.parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

import contenders as cs  # noqa: E402
from outage_load import Plan, drive  # noqa: E402

from tests.store_workers import make_store  # noqa: E402


def main() -> int:
    """Run one fleet process as stdin tells; its report goes to stdout."""
    logging.getLogger("reqcc").addHandler(logging.NullHandler())
    config = json.loads(sys.stdin.readline())
    env = cs.Env(
        api_url=config["api_url"], token_url=config["token_url"],
        transport=cs.pooled_transport(int(config["offsets"]["threads"]) + 4),
        margin_scale=config["lifetime"] / 3600.0, client_id=config["client_id"],
    )
    session = cs.build_reqcc(env, token_store=make_store(tuple(config["store"])))
    url = env.api_url + "books/1"
    timeout = config["offsets"]["request_timeout"]
    try:
        cs.REQCC.warm(session, env)
        print("ready", flush=True)
        plan = Plan.at(float(sys.stdin.readline()), config["offsets"])

        def send() -> str:
            return str(session.get(url, timeout=timeout).status_code)

        outcomes, hung = drive(send, plan)
    finally:
        session.close()
    print(json.dumps({"outcomes": outcomes, "hung": hung}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
