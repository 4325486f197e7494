"""How close `text2sql init`'s estimate comes to the run it wrote, stage by stage.

    until mkdir /tmp/bench.lock 2>/dev/null; do sleep 30; done; trap 'rm -rf /tmp/bench.lock' EXIT
    python benchmarks/sizing.py [--case tiny smollm2]

Each case is two fresh processes in a fresh folder: `text2sql init` on the bundled data (which probes
the model here and prints the estimate it keeps), then `text2sql run` of the config it wrote (which
prints that same estimate, runs every stage and sets the actual times beside it). Cases:

- `tiny`: the quickstart's model (`tiny:llama`, full fine-tuning from scratch), sized by init for a
  CPU within its default hour;
- `smollm2`: SmolLM2-135M-Instruct with LoRA, `--budget 30m`.

Prints one markdown row per stage and per case (estimate, actual, actual / estimate), the init
probe's own time, and the load average before and after each process (other work on the machine
changes every number here; the ratio is the result).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "tiny": ["--model", "tiny:llama"],
    "smollm2": ["--model", "smollm2-135m-instruct", "--budget", "30m"],
}
_DONE = re.compile(r"^\s{4}(?P<stage>[a-z][a-z ]+): (?:done in (?P<seconds>\d+) s|up to date)")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(command: list[str], cwd: Path) -> tuple[float, str, float, float]:
    """(wall seconds, stdout + stderr, load before, load after) of one command in `cwd`."""
    before = load()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{output[-3000:]}")
    return seconds, output, before, load()


def case(name: str, folder: Path) -> dict:
    text2sql = [sys.executable, "-m", "text2sql"]
    config = folder / f"{name}.yaml"
    init_seconds, init_out, init_before, init_after = timed(
        [*text2sql, "init", "--data", "bundled", *CASES[name], "--output", str(config)], folder
    )
    from text2sql.config import load_config
    from text2sql.sizing import load_estimate

    kept = load_estimate(load_config(config))
    if kept is None:
        sys.exit(f"init kept no estimate for {config}:\n{init_out[-3000:]}")
    estimate = kept[0]
    run_seconds, run_out, run_before, run_after = timed([*text2sql, "run", str(config)], folder)
    actual = {}
    for line in run_out.splitlines():
        match = _DONE.match(line)
        if match and match["seconds"] is not None:
            actual[match["stage"].strip()] = float(match["seconds"])
    stages = []
    for s in estimate.stages:
        stages.append({"stage": s.name, "estimate": s.seconds, "actual": actual.get(s.name)})
    return {
        "case": name,
        "config": config.read_text(),
        "init_seconds": init_seconds,
        "probe_seconds": estimate.probe_seconds,
        "machine": estimate.machine,
        "estimate_total": estimate.seconds,
        "actual_stages_total": sum(v for v in actual.values()),
        "run_seconds": run_seconds,
        "stages": stages,
        "load": {"init": [init_before, init_after], "run": [run_before, run_after]},
        "run_tail": run_out.splitlines()[-14:],
    }


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.0f}"


def markdown(results: list[dict]) -> str:
    lines = ["| case | stage | estimate s | actual s | actual / estimate |", "|---|---|---:|---:|---:|"]
    for r in results:
        for s in r["stages"]:
            ratio = f"{s['actual'] / s['estimate']:.2f}" if s["actual"] and s["estimate"] else "-"
            lines.append(f"| {r['case']} | {s['stage']} | {_fmt(s['estimate'])} | {_fmt(s['actual'])} | {ratio} |")
        total = r["actual_stages_total"] / r["estimate_total"]
        lines.append(
            f"| {r['case']} | **all stages** | **{_fmt(r['estimate_total'])}** | **{_fmt(r['actual_stages_total'])}** "
            f"| **{total:.2f}** |"
        )
        lines.append(
            f"| {r['case']} | whole `text2sql run` (start-up included) | {_fmt(r['estimate_total'])} "
            f"| {_fmt(r['run_seconds'])} | {r['run_seconds'] / r['estimate_total']:.2f} |"
        )
    lines.append("")
    for r in results:
        m = r["machine"]
        lines.append(
            f"- {r['case']}: init {r['init_seconds']:.0f} s (probe {r['probe_seconds']:.0f} s, {m['threads']} torch "
            f"thread(s) chosen at the probe); load average init {r['load']['init'][0]}→{r['load']['init'][1]}, "
            f"run {r['load']['run'][0]}→{r['load']['run'][1]}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()
    results = []
    for name in args.case:
        folder = Path(tempfile.mkdtemp(prefix=f"t2s-bench-sizing-{name}-"))
        results.append(case(name, folder))
        print(markdown(results[-1:]), flush=True)
    print()
    print(f"{os.cpu_count()} CPU cores; load average now {load()}")
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
