# brasyn-infer: the submission image (Synapse BraSyn 2025, MedPerf, the brats package 2024 and 2025 forms).
#
# Built from Debian's packages and PyPI only: CUDA 13 and cuDNN 9 come as NVIDIA's pip wheels through
# onnxruntime-gpu[cuda,cudnn], so no CUDA base image is needed. Build with `make docker-build`
# (deploy/docker/build.sh: makes the Debian base locally when Docker Hub is unreachable, passes a proxy's CA).
#   docker run --rm --network none --gpus all -v IN:/input:ro -v OUT:/output:rw brasyn-infer:0.1.0
#
# Build arguments:
#   BASE       the Debian base image (its python3 is the image's Python)
#   ORT_GPU    the onnxruntime-gpu requirement (1.31.x: CUDA 13, cuDNN 9)
#   TENSORRT   empty (default: CUDA + CPU providers), or a TensorRT requirement such as
#              tensorrt-cu13-libs==10.X.Y (the release onnxruntime-gpu names), from NVIDIA's index (TENSORRT_INDEX)
# A CA bundle for a TLS-intercepting proxy can be passed as the BuildKit secret `ca`; pip trusts it.

ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG ORT_GPU="onnxruntime-gpu[cuda,cudnn]==1.31.1"
ARG TENSORRT=""
ARG TENSORRT_INDEX=https://pypi.nvidia.com

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's python3 (3.11 on bookworm) and its venv module; the base image's release pins them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/venv
WORKDIR /src

# Dependencies first, from pyproject.toml alone (a placeholder package), so that a code change does not
# download the 2.6 GB of CUDA wheels again. PIP_CERT is exported for the whole RUN: pip's build
# isolation starts a second pip that needs the CA too.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && mkdir -p inference/brasyn_infer && touch inference/brasyn_infer/__init__.py \
    && /opt/venv/bin/pip install --no-compile ".[gpu]" "${ORT_GPU}" \
    && if [ -n "${TENSORRT}" ]; then \
         /opt/venv/bin/pip install --no-compile --extra-index-url "${TENSORRT_INDEX}" "${TENSORRT}"; \
       fi \
    && /opt/venv/bin/pip uninstall -y brasyn-infer \
    && rm -rf inference build ./*.egg-info

COPY inference ./inference
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && /opt/venv/bin/pip install --no-compile --no-deps . \
    && rm -rf /src

COPY weights/*.json weights/*.onnx weights/*.md /opt/brasyn/weights/

# No writes into the image at run time: HOME, caches and TensorRT engines live in /tmp, so the image
# runs under any --user uid:gid (MedPerf and the brats package pass the caller's) with read-only inputs.
# The CUDA and cuDNN wheels' libraries are on the library path (onnxruntime.preload_dlls() loads them too),
# so that the CUDA provider resolves everything but libcuda.so.1, which `--gpus` mounts from the host's
# driver; tensorrt_libs is there for images built with TENSORRT (absent otherwise, harmless).
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib:/opt/venv/lib/python3.11/site-packages/tensorrt_libs \
    BRASYN_WEIGHTS_DIR=/opt/brasyn/weights \
    BRASYN_CACHE_DIR=/tmp/brasyn-cache \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin brasyn
USER 10001
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/python", "-m", "brasyn_infer.container"]
CMD []
