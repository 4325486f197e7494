# docker build -t text2sql:latest .
#
# The training image: text2sql with GCS, S3, QLoRA (bitsandbytes) and MLflow support on a CUDA build
# of PyTorch. `text2sql` is the entrypoint, so a container runs one verb:
#   docker run --gpus all text2sql:latest run gs://BUCKET/configs/run.yaml
# `text2sql launch vertex` submits Vertex AI jobs that run this image; the Airflow example in
# examples/airflow/ runs one pod of it per stage.
ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TEXT2SQL_CACHE=/var/cache/text2sql \
    HF_HOME=/var/cache/huggingface

WORKDIR /opt/text2sql

# Dependencies in their own layer, installed against an empty package, so that a code change does not
# reinstall them. The constraint keeps the base image's CUDA build of torch (pip would otherwise be
# free to replace it with a CPU or other CUDA wheel from PyPI).
COPY pyproject.toml README.md ./
RUN python -c "import torch; print('torch==' + torch.__version__)" > /tmp/constraints.txt \
 && mkdir -p src/text2sql && touch src/text2sql/__init__.py \
 && pip install --constraint /tmp/constraints.txt ".[gcs,s3,qlora,mlflow,vertex,gpu-monitor]" \
 && pip uninstall -y text2sql && rm -rf src build

COPY src ./src
COPY configs ./configs
RUN pip install --no-deps . && text2sql --version

ENTRYPOINT ["text2sql"]
CMD ["--help"]
