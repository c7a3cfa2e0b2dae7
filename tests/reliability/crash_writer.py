"""Writer processes for tests/reliability/test_crash.py (not a test).

    python tests/reliability/crash_writer.py DATABASE_URL OUT_DIR

A small fork server: it imports the engine once (seconds on a loaded machine), prints `loaded`,
then reads commands on stdin:

- `run N`  forks a NEW writer process and prints `pid <pid>`. The writer opens its own database
  engine (nothing is shared with the server: the server never touches the database) and saves
  intake records in a loop through engine.storage.create (each one transaction: record,
  application number, audit event). It writes `ready` to OUT_DIR/run-N.log, then `ack <id>
  <number>` after each save returned, one write(2) per line: what the test reads back after the
  SIGKILL is exactly what the writer saw acknowledged.
- `reap <pid>`  waits for that (killed) writer and prints `reaped <pid> <signal>`.

The test kills each writer with SIGKILL by its pid; the next writer is a fresh fork.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.access import Actor  # noqa: E402
from engine.idnumber import make_id  # noqa: E402
from engine.storage import create  # noqa: E402

STAFF = Actor("staff", "staff")


def values(run: int, i: int) -> dict:
    birth = date(1950, 1, 1) + timedelta(days=run * 400 + i)
    return {
        "application_date": "2026-03-16", "intake_channel": "window", "name": f"崩溃测试{run:02d}-{i:04d}",
        "sex": "male" if i % 2 else "female", "id_doc_type": "resident_id",
        "id_number": make_id("440803", birth, i % 1000), "phone": "13802715634", "case_category": "civil",
        "service_type": "litigation_agency", "case_cause": "support_maintenance", "legal_position": "plaintiff",
        "facts": f"第 {run} 轮第 {i} 条：申请人因赡养纠纷申请法律援助，事实经过详见材料。",
        "hardship_route": "exempt", "exemption_ground": "social_assistance",
    }


def writer(url: str, run: int, log: Path) -> None:
    """The writer process: runs until it is killed."""
    from engine.db import get_engine
    from engine.forms import choice_lists, get_spec

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        engine = get_engine(url)
        get_spec(engine, "intake")
        choice_lists(engine)
        os.write(fd, b"ready\n")
        i = 0
        while True:
            sub = create(engine, "intake", values(run, i), actor=STAFF)
            os.write(fd, f"ack {sub.id} {sub.number}\n".encode())
            i += 1
    except BaseException:
        os.write(fd, ("error " + traceback.format_exc().replace("\n", " | ") + "\n").encode())
        os._exit(1)


def main() -> None:
    url, out = sys.argv[1], Path(sys.argv[2])
    print("loaded", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            pid = os.fork()
            if pid == 0:  # the child: a new writer process
                sys.stdin.close()
                writer(url, int(arg), out / f"run-{int(arg)}.log")
                os._exit(0)
            print(f"pid {pid}", flush=True)
        elif cmd == "reap":
            _pid, status = os.waitpid(int(arg), 0)
            print(f"reaped {arg} {os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1}", flush=True)


if __name__ == "__main__":
    main()
