#!/usr/bin/env python3
"""Where the CPU goes while a command runs, by process (not a test).

    python3 bench/cpu_by_process.py [--source-db NAME] -- COMMAND [ARG...]

Runs COMMAND and, every 50 ms, reads each process's CPU time from /proc and
charges what it used since the last look to what the process was doing then:
a PostgreSQL backend by its title's command ("tgt COPY", "src COPY",
"tgt ANALYZE", "tgt ALTER TABLE"…; "src" is a backend of --source-db, "tgt"
any other database), a server's own process by its name ("server
walwriter"…), and the tools by name (supamigrate, pgcopydb, pg_dump…).
Prints the wall time, the machine's busy and idle CPU seconds (all cores,
from /proc/stat: what nothing above is charged with is the kernel's own
threads and processes that ended between two looks), then the seconds per
class. Used for the profiles in docs/benchmarks.md.
"""
import collections
import os
import re
import subprocess
import sys
import time

TOOLS = {"supamigrate", "pgcopydb", "pg_dump", "pg_restore", "psql"}


def classify(pid, source_db):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    if cmd.startswith("postgres: "):
        title = cmd[len("postgres: "):]
        backend = re.match(r"(\S+) (\S+) (\S+\(\d+\)|\[local\]) (.*)", title)
        if backend:
            side = "src" if backend.group(2) == source_db else "tgt"
            return f"{side} {re.sub(r' waiting$', '', backend.group(4))}"
        title = re.sub(r"^\d+/", "", title)
        title = re.sub(r"(autovacuum worker|parallel worker).*", r"\1", title)
        return "server " + title.split(" for ")[0]
    exe = cmd.split(" ")[0]
    if os.path.basename(exe) in TOOLS:
        return os.path.basename(exe)
    return "server postmaster" if exe.endswith("/postgres") else None


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def machine():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v), v[3] + v[4]


def main():
    args = sys.argv[1:]
    source_db = "bench_plain"
    if args[:1] == ["--source-db"]:
        source_db, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("usage: cpu_by_process.py [--source-db NAME] -- COMMAND [ARG...]")
    hz = os.sysconf("SC_CLK_TCK")
    seen = {p: cpu_ticks(p) for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/stat")}
    charged = collections.Counter()
    total0, idle0 = machine()
    t0 = time.time()
    child = subprocess.Popen(args)
    while True:
        done = child.poll() is not None
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                now = cpu_ticks(p)
            except OSError:
                continue
            used = now - seen.get(p, 0)
            seen[p] = now
            if used:
                what = classify(p, source_db)
                if what:
                    charged[what] += used
        if done:
            break
        time.sleep(0.05)
    wall = time.time() - t0
    total1, idle1 = machine()
    busy = (total1 - total0 - (idle1 - idle0)) / hz
    print(f"wall {wall:.1f} s, busy CPU {busy:.1f} s, idle {(idle1 - idle0) / hz:.1f} s "
          f"(all cores); charged to processes below {sum(charged.values()) / hz:.1f} s")
    for what, ticks in charged.most_common(25):
        print(f"{ticks / hz:8.2f} s  {what}")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
