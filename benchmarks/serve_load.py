"""Load-test `text2sql serve`: N concurrent `/v1/sql` requests, batched vs unbatched, in the same run.

    python benchmarks/serve_load.py [--requests 200] [--max-tokens 32] [--batch-size 16] [--model tiny:llama]

Starts `text2sql serve` twice as a subprocess on 127.0.0.1 (a free port; nothing leaves the
machine): once with micro-batching (`--batch-size`), once with `--batch-size 1` as the baseline.
Each time it fires all requests at once with httpx.AsyncClient (questions from the bundled test
split, each on its own database, `execute: true`), and reports HTTP errors (goal: 0), throughput
and p50/p99 latency. A tiny random model answers garbage SQL, so "SQL failed" counts are expected
and are not errors: the server answered them with 200 and the reason. Prints a markdown table for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, batch_size: int, max_tokens: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "text2sql",
        "serve",
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--batch-size",
        str(batch_size),
        "--max-tokens-limit",
        str(max(max_tokens, 1)),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json().get("status") == "ok":
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 300 s")


def questions(n: int) -> list[dict]:
    from text2sql.data.bundled import iter_rows

    rows = list(iter_rows("test"))
    return [{"question": rows[i % len(rows)]["question"], "db_id": rows[i % len(rows)]["db_id"]} for i in range(n)]


async def fire(url: str, bodies: list[dict]) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    sql_failed = 0
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:

        async def one(body: dict) -> None:
            nonlocal sql_failed
            start = time.perf_counter()
            try:
                r = await client.post("/v1/sql", json=body)
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                return
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                errors.append(str(r.status_code))
            elif r.json()["error"] is not None:
                sql_failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(bodies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "sql_failed": sql_failed,
        "wall_s": wall,
        "throughput_rps": len(bodies) / wall,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
    }


def measure(model: str, batch_size: int, bodies: list[dict]) -> dict:
    port = free_port()
    max_tokens = bodies[0]["max_tokens"]
    proc = start_server(model, port, batch_size, max_tokens)
    url = f"http://127.0.0.1:{port}"
    try:
        httpx.post(f"{url}/v1/sql", json=bodies[0], timeout=300).raise_for_status()  # warm-up, untimed
        stats = httpx.get(f"{url}/health").json()
        result = asyncio.run(fire(url, bodies))
        result.update(batch_size=batch_size, model=stats.get("model"))
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per request")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from text2sql.models.loading import resolve_model

    resolve_model(args.model)  # build/cache the tiny model once, outside the timed runs
    bodies = [{**q, "execute": True, "max_tokens": args.max_tokens} for q in questions(args.requests)]
    load_before = os.getloadavg()[0]  # other work on the machine skews the numbers; say how much
    runs = [measure(args.model, args.batch_size, bodies), measure(args.model, 1, bodies)]
    print(
        f"{args.requests} concurrent POST /v1/sql (execute: true, {args.max_tokens} new tokens each), "
        f"model {args.model}, {os.cpu_count()} CPUs, load average before/after "
        f"{load_before:.1f}/{os.getloadavg()[0]:.1f}\n"
    )
    print("| server | HTTP errors | SQL failed (200) | wall s | req/s | p50 s | p99 s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        label = f"batch_size {r['batch_size']}" + (" (baseline)" if r["batch_size"] == 1 else "")
        print(
            f"| {label} | {r['errors']} | {r['sql_failed']} | {r['wall_s']:.1f} | {r['throughput_rps']:.2f} "
            f"| {r['p50_s']:.2f} | {r['p99_s']:.2f} |"
        )
    ratio = runs[0]["throughput_rps"] / runs[1]["throughput_rps"]
    print(f"\nthroughput ratio, batched / unbatched: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"runs": runs, "ratio": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
