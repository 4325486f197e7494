"""Run text2sql on a cloud platform: `text2sql launch vertex CONFIG.yaml` submits a Vertex AI custom
job that runs the training image (the repo's Dockerfile) on GPUs, reading its config from GCS."""

from text2sql.launch.vertex import VERBS, launch_problems, staged_config_uri, submit, vertex_job_spec

__all__ = ["VERBS", "launch_problems", "staged_config_uri", "submit", "vertex_job_spec"]
