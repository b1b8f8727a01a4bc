# syntax=docker/dockerfile:1
# brasyn-infer: CUDA image for BraSyn submissions (Synapse 2025, MedPerf MLCube, the brats package).
#   docker build -t brasyn-infer .
#   docker run --rm --network none --gpus all -v IN:/input:ro -v OUT:/output:rw brasyn-infer

# --- build: a wheel of our package (pure Python); nothing of this stage ships -----------------------
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inference ./inference
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: CUDA 12.8 + cuDNN 9 runtime, Python 3.12, onnxruntime-gpu 1.22 with TensorRT 10.9 -----
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS runtime
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu's python3 (3.12) and venv; the base image's tag pins the release they come from.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
COPY --from=build /wheels /wheels
# onnxruntime-gpu 1.22 is built against TensorRT 10.9 and CUDA 12.x (ONNX Runtime's TensorRT EP table).
RUN /opt/venv/bin/pip install --no-compile /wheels/*.whl \
        onnxruntime-gpu==1.22.0 tensorrt-cu12-libs==10.9.0.34 \
    && /opt/venv/bin/pip uninstall -y onnxruntime pip \
    && rm -rf /wheels
COPY weights /opt/brasyn/weights
# No writes into the image at run time: HOME, caches and TensorRT engines live in /tmp, so the
# image runs under any --user uid:gid with a read-only /input.
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.12/site-packages/tensorrt_libs:$LD_LIBRARY_PATH \
    BRASYN_WEIGHTS_DIR=/opt/brasyn/weights \
    BRASYN_CACHE_DIR=/tmp/brasyn-cache \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin brasyn
USER 10001
WORKDIR /tmp
ENTRYPOINT ["python3", "-m", "inference.container"]
CMD []
