"""The verbs of the `text2sql` command, one module each: `HELP` (one line for `text2sql --help`),
`add_arguments(parser)` and `run(args) -> exit code`. Each is a thin call into library code; modules
import only light things at the top, so `text2sql --help` and bad input answer at once, and load the
libraries a verb needs (torch, transformers) inside `run`."""

# verb → module, in the order `text2sql --help` lists them.
VERBS = (
    "init",
    "run",
    "config",
    "validate",
    "prepare",
    "train",
    "merge",
    "rl",
    "evaluate",
    "compare",
    "label",
    "synth",
    "predict",
    "serve",
    "mcp",
    "export",
    "tune",
    "launch",
    "db",
    "init-model",
)


def module_name(verb: str) -> str:
    return f"text2sql.commands.{verb.replace('-', '_')}"
