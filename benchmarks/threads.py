"""Training speed by CPU thread count: the quickstart model and config, on a quiet machine and with
CPU-bound processes running beside it.

    python benchmarks/threads.py [--seconds 40] [--burners 2] [--threads auto 1 2]

Each measurement is a fresh process that trains the quickstart config (`configs/quickstart.yaml`:
the 0.8M-parameter tiny Llama, batch 16) for `--seconds` of wall time and reports optimizer steps
per second over all steps but the first five (warm-up). `auto` is text2sql's default
(`model.threads: 0`). The same measurements are then repeated while `--burners` processes spin on
the CPU (`while True: pass`), as other work on a shared machine does. Prints markdown for
BENCHMARKS.md, with the machine's cores and load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(threads: str, seconds: float) -> dict:
    """Train the quickstart config for `seconds`; steps/s after warm-up (run in a child process)."""
    from transformers import TrainerCallback

    from text2sql.config import load_config
    from text2sql.stages import StageContext, Train

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            if self.ends[-1] - self.start >= seconds:
                control.should_training_stop = True

    work = Path(tempfile.mkdtemp(prefix="t2s-bench-threads-"))
    setting = "0" if threads == "auto" else threads
    cfg = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"output_dir={work}",
            f"model.threads={setting}",
            "training.save_strategy=no",
            "training.eval_strategy=no",
            "callbacks.progress=lines",
            "training.logging_steps=100000",
        ],
    )
    clock = Clock()
    Train(resume=False, callbacks=[clock]).run(StageContext(cfg, say=lambda _: None))
    import torch

    steps = clock.ends[5:]
    rate = (len(steps) - 1) / (steps[-1] - steps[0]) if len(steps) > 1 else 0.0
    return {
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "steps_per_second": rate,
        "steps": len(clock.ends),
    }


def measure(threads: str, seconds: float) -> dict:
    cmd = [sys.executable, __file__, "--one", threads, "--seconds", str(seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="training time per measurement")
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes in the busy runs")
    parser.add_argument("--threads", nargs="+", default=["auto", "1", "2"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.seconds)))
        return

    rows = []
    for busy in (False, True):
        burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners if busy else 0)
        ]
        try:
            time.sleep(1 if busy else 0)
            load = os.getloadavg()[0]
            for threads in args.threads:
                result = measure(threads, args.seconds)
                rows.append((busy, threads, result, load))
                print(
                    f"{'busy' if busy else 'quiet'} threads={threads}: {result['steps_per_second']:.2f} steps/s "
                    f"(torch {result['torch_threads']} thread(s), {result['steps']} steps)",
                    file=sys.stderr,
                )
        finally:
            for p in burners:
                p.kill()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{cores} cores; {args.burners} CPU-bound processes beside the busy runs; {args.seconds:g} s of training each\n"
    )
    print("| machine | threads | torch threads | steps/s | vs quiet, auto |")
    print("|---|---|---:|---:|---:|")
    base = next(r[2]["steps_per_second"] for r in rows if not r[0] and r[1] == "auto")
    for busy, threads, result, load in rows:
        machine = f"busy ({args.burners} burners, load {load:.1f})" if busy else f"quiet (load {load:.1f})"
        rate = result["steps_per_second"]
        print(f"| {machine} | {threads} | {result['torch_threads']} | {rate:.2f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
