"""Airflow DAG: prepare → train → merge → register → evaluate, each a pod running the text2sql training image.

Copy this file into your DAGs folder. It needs `apache-airflow-providers-cncf-kubernetes` and a
Kubernetes cluster with GPU nodes. Parameters are Airflow Variables (seed 000's pattern), read
through templates when a task runs, not when the scheduler parses the file:

    airflow variables set text2sql_image       us-docker.pkg.dev/PROJECT/REPO/text2sql:TAG   # docker build -t ... .
    airflow variables set text2sql_config      gs://BUCKET/configs/t5-large-lora.yaml
    airflow variables set text2sql_output_uri  gs://BUCKET/outputs/t5-large-lora
    airflow variables set text2sql_namespace   default

The four stages share one run folder (`/workspace/runs/<run>`) on the PersistentVolumeClaim
`text2sql-runs` (create it in that namespace first), as `text2sql run` does on one machine.
`merge` uploads the merged model to `text2sql_output_uri` (seed 000: "uploads the final merged
model back to GCS"); `register` uploads it to the Vertex AI Model Registry (`launch.project`,
`launch.region` and `launch.serving_image_uri` of the config) and hands the registered resource name
to `evaluate` by XCom, which loads the model from the registry by that name, as the seed's DAG does,
and uploads its results. Pods get credentials the usual way (Workload
Identity on GKE, or AWS_* / GOOGLE_APPLICATION_CREDENTIALS from a secret). With
`finetune.method: full` training writes a model, not an adapter: drop `merge`, evaluate `<run>/model`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

VOLUME_CLAIM = "text2sql-runs"  # volumes are not templated fields: a fixed name, not a Variable
RUN = "/workspace/runs/{{ ts_nodash }}"
CONFIG = "{{ var.value.text2sql_config }}"
OUTPUT = "{{ var.value.text2sql_output_uri }}/{{ ts_nodash }}"
REGISTERED = "{{ ti.xcom_pull(task_ids='register') }}"  # projects/P/locations/L/models/ID@VERSION
UPLOAD = "python -c 'import sys; from text2sql.storage import upload; print(upload(sys.argv[1], sys.argv[2]))'"

STAGES = {
    # task id: (shell command, GPUs)
    "prepare": (f"text2sql prepare {CONFIG} output_dir={RUN}", 0),
    "train": (f"text2sql train {CONFIG} output_dir={RUN}", 1),
    "merge": (
        f"text2sql merge --adapter {RUN}/adapter --output {RUN}/merged && {UPLOAD} {RUN}/merged {OUTPUT}/merged",
        1,
    ),
    "register": (
        # The resource name goes to XCom as JSON (the pod's /airflow/xcom/return.json).
        f"text2sql launch vertex-register {CONFIG} output_dir={OUTPUT} --model {OUTPUT}/merged --name-file /tmp/model "
        """&& mkdir -p /airflow/xcom && printf '"%s"' "$(cat /tmp/model)" > /airflow/xcom/return.json""",
        0,
    ),
    "evaluate": (
        f"text2sql evaluate --model {REGISTERED} --data {RUN}/data --split test --output {RUN}/evaluation "
        f"&& {UPLOAD} {RUN}/evaluation {OUTPUT}/evaluation",
        1,
    ),
}

workspace = k8s.V1Volume(
    name="workspace",
    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=VOLUME_CLAIM),
)

with DAG(
    dag_id="text2sql_finetune",
    description="text2sql: prepare, train (LoRA), merge, register, evaluate (EM, token F1, execution accuracy)",
    start_date=datetime(2025, 1, 1),
    schedule=None,  # triggered by hand or by an upstream data DAG
    catchup=False,
    tags=["text2sql"],
) as dag:
    tasks = {}
    for task_id, (command, gpus) in STAGES.items():
        tasks[task_id] = KubernetesPodOperator(
            task_id=task_id,
            name=f"text2sql-{task_id}",
            namespace="{{ var.value.text2sql_namespace }}",
            image="{{ var.value.text2sql_image }}",
            cmds=["sh", "-c"],  # replaces the image's `text2sql` entrypoint so a step can chain an upload
            arguments=[command],
            volumes=[workspace],
            volume_mounts=[k8s.V1VolumeMount(name="workspace", mount_path="/workspace")],
            container_resources=k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)} if gpus else None),
            get_logs=True,
            do_xcom_push=task_id == "register",
            on_finish_action="delete_pod",
        )

    prepare, train, merge, register, evaluate = (tasks[t] for t in STAGES)
    prepare >> train >> merge >> register >> evaluate
