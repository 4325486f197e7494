"""`text2sql compare DIR_A DIR_B ...`: evaluation runs side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "put evaluation runs side by side (terminal table + compare.html)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="DIR", help="evaluation folders; the first is the reference")
    p.add_argument("--output", metavar="DIR", help="folder for compare.html (default: the current folder)")


def run(args: argparse.Namespace) -> int:
    from text2sql.evaluation.compare_runs import compare_runs, format_table, render_compare_html

    comparison = compare_runs(args.runs)
    print(format_table(comparison))
    page = render_compare_html(comparison, Path(args.output or ".") / "compare.html")
    print(f"comparison page: {page}")
    return 0
