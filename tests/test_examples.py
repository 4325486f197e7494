"""The deployment examples: the Airflow DAG (parsed, not imported: Airflow is not a dependency) and
the Dockerfile (read, not built: tests have no Docker engine)."""

from __future__ import annotations

import ast

from repo import ROOT

DAG_FILE = ROOT / "examples" / "airflow" / "text2sql_dag.py"
STAGES = ["prepare", "train", "merge", "register", "evaluate"]


def _module_value(tree: ast.Module, name: str) -> ast.expr:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return node.value
    raise AssertionError(f"{name} is not assigned at module level")


def _rshift_chain(node: ast.expr) -> list[str]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
        return _rshift_chain(node.left) + _rshift_chain(node.right)
    assert isinstance(node, ast.Name), ast.dump(node)
    return [node.id]


def test_dag_runs_the_stages_in_order_and_evaluates_the_registered_model():
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"), filename=str(DAG_FILE))
    stages = _module_value(tree, "STAGES")
    assert isinstance(stages, ast.Dict)
    assert [k.value for k in stages.keys] == STAGES  # the task ids
    for task_id, value in zip(STAGES, stages.values, strict=True):
        command = value.elts[0]
        first = command.values[0] if isinstance(command, ast.JoinedStr) else command
        verb = "launch vertex-register" if task_id == "register" else task_id
        assert first.value.startswith(f"text2sql {verb} ")  # each task runs its own verb

    chains = [
        _rshift_chain(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.BinOp)
    ]
    assert chains == [STAGES]  # prepare >> train >> merge >> register >> evaluate, nothing else
    # evaluate loads the model by the resource name register pushed to XCom
    evaluate = ast.unparse(stages.values[STAGES.index("evaluate")].elts[0])
    assert "--model {REGISTERED}" in evaluate
    assert ast.literal_eval(_module_value(tree, "REGISTERED")) == "{{ ti.xcom_pull(task_ids='register') }}"
    register = ast.unparse(stages.values[STAGES.index("register")].elts[0])
    assert "--name-file /tmp/model" in register and "/airflow/xcom/return.json" in register

    pods = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "KubernetesPodOperator"
    ]
    assert len(pods) == 1  # built once per stage in a loop
    kwargs = {k.arg: k.value for k in pods[0].keywords}
    assert kwargs["image"].value == "{{ var.value.text2sql_image }}"  # an Airflow Variable, read at run time
    assert ast.unparse(kwargs["task_id"]) == "task_id"
    assert ast.unparse(kwargs["do_xcom_push"]) == "task_id == 'register'"


def test_dockerfile_builds_the_training_image():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.splitlines()[0].startswith("# docker build")
    assert "FROM ${BASE_IMAGE}" in dockerfile and "cuda" in dockerfile
    assert 'pip install --constraint /tmp/constraints.txt ".[gcs,s3,qlora,mlflow,vertex,gpu-monitor]"' in dockerfile
    assert 'ENTRYPOINT ["text2sql"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", "runs", "tests"} <= set(ignored)
