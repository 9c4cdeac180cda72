"""`make bench`: run every area, print the table and the targets, write .cache/bench-results.json."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

import anyio

from bench import core, health, patterns, plugins, relay
from bench.common import BIN, ROOT, Results, stop_all

AREAS = {"core": core, "patterns": patterns, "health": health, "plugins": plugins, "relay": relay}
BUDGET_S = 600.0
"""An area is skipped (and said so) once this much of the run has gone."""
RESULTS = ROOT / ".cache" / "bench-results.json"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(AREAS), help=f"comma-separated areas: {', '.join(AREAS)}")
    args = parser.parse_args()
    chosen = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(AREAS)}")
    check = subprocess.run([str(BIN / "manifold"), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        print(f"bench: `manifold plugins` fails, so the gateway cannot start:\n{check.stderr[-2000:]}")
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    res = Results()
    t0 = time.monotonic()
    print(f"manifold bench: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          "every figure is gateway vs direct, measured in this run", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="manifold-bench-") as tmp:
            for name in chosen:
                if time.monotonic() - t0 > BUDGET_S:
                    res.error(name, f"skipped: the run has used {BUDGET_S:.0f} s already")
                    continue
                print(f"\n== {name}", flush=True)
                started = time.monotonic()
                area_tmp = Path(tmp) / name
                area_tmp.mkdir()
                try:
                    anyio.run(AREAS[name].run, res, area_tmp)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # one area failing must not cost the others
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    res.error(name, detail[-1500:])
                    traceback.print_exc(file=sys.stderr)
                finally:
                    stop_all()
                print(f"   ({name}: {time.monotonic() - started:.0f} s)", flush=True)
    except KeyboardInterrupt:
        stop_all()
        print("\nbench: interrupted", flush=True)
        return 130
    elapsed = time.monotonic() - t0
    print("\n== all figures (gateway vs direct; ratio = gateway / direct, added = gateway - direct)")
    print(res.table())
    print("\n== targets")
    print(res.summary())
    if res.notes:
        print("\n== notes")
        print("\n".join(f"- {n}" for n in res.notes))
    if res.errors:
        print("\n== errors")
        print("\n".join(f"- {e}" for e in res.errors))
    res.dump(RESULTS, {"elapsed_s": round(elapsed, 1), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(f"\nbench: {elapsed:.0f} s; results in {RESULTS.relative_to(ROOT)}")
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
