"""The reliability table: each row a claim, the tests that prove it, and their verdict on this commit today.

    python -m bench.reliability            # run every row, rewrite the table in docs/reliability.md
    python -m bench.reliability --check    # run every row, exit 1 if any fails (the table is left alone)

Each row runs its tests in a fresh pytest process (real sockets, real servers, Redis on 127.0.0.1:6379), so a row's
verdict is what that command gives anyone who runs it. The figures in "what is tried" are the tests' own constants.
"""

from __future__ import annotations

import argparse
import glob
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE_FILE = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


@dataclass(frozen=True)
class Row:
    claim: str
    tried: str
    targets: tuple[str, ...]  # test files (globs allowed) or node ids


ROWS = (
    Row("Hostile input never crashes the listener",
        "150 generated requests (bodies, headers, framing, targets, verbs) against a sidecar process: no 500, every "
        "answer well-formed, the process up, RSS growth under 40 MB; every split of a request across reads parses "
        "alike", ("tests/integration/test_listener_fuzz.py", "tests/unit/net/listener/test_reading.py")),
    Row("One meaning per message",
        "duplicate keys, escaped keys, case-variant and case-twin keys, id-less and null-id requests, both eras: the "
        "upstream receives what was decided or nothing", ("tests/integration/test_message_meaning.py",)),
    Row("Slow, silent and oversized clients are cut off",
        "trickled heads and bodies, silent connections, announced and chunked bodies over the limit, the connection "
        "limit", ("tests/integration/test_listener*.py",)),
    Row("TLS terminated and rotated",
        "the SDK client over HTTPS, mutual TLS accepted and refused, TLS 1.1 refused, a certificate rotated under an "
        "open connection, upstream HTTPS with a private CA and a client certificate",
        ("tests/integration/test_tls.py", "tests/integration/test_upstream_tls.py")),
    Row("Policy storms decide nothing wrongly",
        "100 atomic pushes (allowing, broken, denying) under 4 callers: every call decided by the revision in force; "
        "broken pushes, broken startups and undefined results deny or keep the last good bundle",
        ("tests/integration/test_policy_storm.py", "tests/integration/test_policy_stage.py")),
    Row("A failing HTTP upstream costs only the calls in flight",
        "refused, slow, garbage, reset mid-stream, client gone; the sidecar serves on after each",
        ("tests/integration/test_upstream_failures.py", "tests/integration/test_pool_*.py")),
    Row("A dying stdio server is noticed at once and restarted",
        "a child exiting while a grandchild holds its stdout, over-long lines, a child that never starts: answered "
        "at once, restarted, reported", ("tests/integration/test_stdio_faults.py",
                                         "tests/integration/test_stdio_upstream.py")),
    Row("Redis away: each store follows its mode",
        "rate limits fail open or closed as configured, the cache is bypassed, approvals fail closed; recovery when "
        "Redis returns", ("tests/integration/test_ratelimit_redis.py", "tests/integration/test_approval_redis.py",
                          "tests/e2e/test_cache_redis.py")),
    Row("Forged tokens and identity-provider trouble",
        "wrong key, issuer, audience, algorithm, expiry; JWKS unreachable, rotated, shared by queued lookups",
        ("tests/integration/test_auth.py", "tests/unit/auth/test_keys.py")),
    Row("Graceful shutdown",
        "SIGTERM with calls in flight: they finish, the process exits 0; workers drain and exit",
        ("tests/integration/test_process.py", "tests/integration/test_workers.py")),
)


def run_row(row: Row) -> tuple[bool, str, float]:
    targets = [match for target in row.targets for match in (sorted(glob.glob(target, root_dir=ROOT)) or [target])]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)),
                   done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output")
    verdict = re.sub(r"\s+in [\d.]+s.*$", "", summary.strip("= "))
    return done.returncode == 0, verdict, seconds


def table(results: list[tuple[Row, bool, str, float]], commit: str, day: str) -> str:
    lines = [f"Measured on {day} at commit `{commit}` with `python -m bench.reliability`.", "",
             "| claim | what is tried | command | verdict |", "|---|---|---|---|"]
    for row, ok, verdict, seconds in results:
        command = "`pytest " + " ".join(row.targets) + "`"
        lines.append(f"| {row.claim} | {row.tried} | {command} | {'held' if ok else 'FAILED'}: {verdict} "
                     f"({seconds:.0f} s) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a row fails; leave the table alone")
    args = parser.parse_args(argv)
    results = []
    for row in ROWS:
        ok, verdict, seconds = run_row(row)
        print(f"{'held  ' if ok else 'FAILED'} {row.claim}: {verdict} ({seconds:.0f} s)", flush=True)
        results.append((row, ok, verdict, seconds))
    if not args.check:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        text = TABLE_FILE.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        rendered = table(results, commit, time.strftime("%Y-%m-%d", time.gmtime()))
        TABLE_FILE.write_text(text[:start] + "\n" + rendered + "\n" + text[end:])
    return 0 if all(ok for _, ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
