"""The GPU throughput benchmark's smoke mode runs end to end on CPU and checks itself."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_throughput.py"
SETUPS = ("hf_default", "text2sql_default", "group_by_length", "batch_x2")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_smoke_run_measures_every_setup_and_checks_the_maths(tmp_path):
    bench = _load_benchmark()
    out = tmp_path / "results.json"
    report = bench.main(["--smoke", "--setups", ",".join(SETUPS), "--out", str(out)])

    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["smoke"] is True
    assert [r["setup"] for r in written["setups"]] == list(SETUPS)
    assert written["peak_flops"] > 0
    assert "4*N_base + 6*N_lora" in written["flops_formula"]
    assert len(written["load_average_start"]) == 3 and len(written["load_average_end"]) == 3
    assert written["device"] and written["torch"]
    for r in written["setups"]:
        assert r["status"] in ("ok", "skipped"), f"{r['setup']}: {r.get('error')}"
        if r["status"] == "skipped":
            assert r["reason"].startswith("skipped: "), r
            continue
        assert r["tokens_per_s"] > 0, r
        assert r["mfu_percent"] > 0, r
        assert r["peak_memory_bytes"] > 0, r
        assert len(r["reference_losses"]) == written["ref_batches"], r
        assert r["loss_check"]["passed"] is True, (r["setup"], r["loss_check"])
        assert r["vs_hf_default"] > 0
    assert report["setups"] == written["setups"]
