# One-command set-up: every target builds the virtual environment it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CASE ?= examples/BraTS-GLI-00001-000
OUT ?= output

.PHONY: install install-dev demo test unit lint bench docker-test train train-gpu export-gpu loco-gpu loco oof trust-folds trust train-refiner loco-refiner clean docker-build docker-run mlcube-run
IMAGE ?= brasyn-infer:0.1.0
IN ?= $(CURDIR)/examples
DOCKER_OUT ?= $(CURDIR)/output-docker

$(BIN)/.installed-runtime: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[cpu]'
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[cpu,torch,test]'
	touch $(BIN)/.installed-runtime $@

install: $(BIN)/.installed-runtime
install-dev: $(BIN)/.installed-dev

## demo: synthesize the example case's missing modality with the default weights
demo: $(BIN)/.installed-runtime
	$(BIN)/brasyn-infer $(CASE) $(OUT)

## test: the whole test suite (what .ci/run calls): the Python tests, then the image built and run (docker-test)
## (the Slurm test needs a one-node cluster: local-cluster.sh starts one as root; exit 3, not root: that test skips)
test: $(BIN)/.installed-dev
	deploy/slurm/local-cluster.sh start || [ $$? = 3 ]
	$(BIN)/python -m pytest -q -m "not docker"
	$(MAKE) docker-test

## unit: the Python tests only (no image)
unit: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -q -m "not docker"

bench: $(BIN)/.installed-dev
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/trust.py

## lint: ruff on the Python code, hadolint on the Dockerfile
lint: $(BIN)/.installed-dev
	$(BIN)/ruff check inference training benchmarks tests
	$(BIN)/hadolint Dockerfile

## docker-build: the image (deploy/docker/build.sh): the Debian base pulled or made locally, CA_BUNDLE (default:
## $$PIP_CERT or $$SSL_CERT_FILE) trusted by pip in the build, TENSORRT=tensorrt-cu13-libs==X to add TensorRT
CA_BUNDLE ?=
TENSORRT ?=
docker-build:
	IMAGE=$(IMAGE) $(if $(CA_BUNDLE),CA_BUNDLE=$(CA_BUNDLE)) TENSORRT=$(TENSORRT) deploy/docker/build.sh

## docker-test: start an engine if none answers (deploy/docker/engine.sh), build, and run the image as Synapse,
## the brats package (2025 and 2024 forms) and MedPerf run it, against the host CLI (tests/deploy/test_image.py)
docker-test: $(BIN)/.installed-dev
	deploy/docker/engine.sh
	IMAGE=$(IMAGE) $(if $(CA_BUNDLE),CA_BUNDLE=$(CA_BUNDLE)) TENSORRT=$(TENSORRT) deploy/docker/build.sh
	BRASYN_DOCKER_TEST=1 BRASYN_IMAGE=$(IMAGE) $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/deploy/test_image.py

## docker-run: the image, run exactly as Synapse runs it (BraSyn 2025)

docker-run:
	mkdir -p $(DOCKER_OUT)
	docker run --rm --network none --gpus all -v $(IN):/input:ro -v $(DOCKER_OUT):/output:rw \
		--memory 16G --shm-size 4G $(IMAGE)

## mlcube-run: the MedPerf way (pip install mlcube mlcube-docker); data in mlcube/workspace/data
mlcube-run:
	mlcube run --mlcube=mlcube/mlcube.yaml --task=infer

## train: the default generator's recipe, by step count so that it does not depend on the machine's speed
## (one torch thread: bit-reproducible for a seed; about 40 minutes on an idle 2-core CPU with bf16)
RECIPE = --dim 16 --views sagittal axial coronal --steps 1430 --bf16 --threads 1
TRAIN_ARGS ?= --cases ../shared/data/cases --minutes 600 --seed 0 $(RECIPE) --out weights --name default \
	--refiner default-refiner
train: $(BIN)/.installed-dev
	$(BIN)/python -m training.train $(TRAIN_ARGS)

## train-gpu: the GPU recipe, how weights/default was made (one H100, about 8 minutes): the four leave-one-case-out
## folds and the final model side by side (training/gpu_loco.sh), with GPU_PY, a Python whose torch sees the GPU.
## Then export-gpu (here, with the product's ONNX toolchain) and loco-gpu (score the folds with brasyn-infer evaluate).
GPU_PY ?= python3
GPU_RECIPE = --dim 16 --views sagittal axial coronal --batch 16 --bf16 --threads 3 --seed 0
GPU_MINUTES = 7
GPU_RUN ?= runs/gpu
train-gpu:
	GPU_RECIPE="$(GPU_RECIPE)" PY=$(GPU_PY) training/gpu_loco.sh ../shared/data/cases $(GPU_RUN) $(GPU_MINUTES)
export-gpu: $(BIN)/.installed-dev
	for d in $(GPU_RUN)/fold-*; do $(BIN)/python -m training.export_checkpoint $$d/fold.safetensors --out $$d --name fold; done
	$(BIN)/python -m training.export_checkpoint $(GPU_RUN)/final/default.safetensors --out weights --name default \
		--refiner default-refiner
	cp $(GPU_RUN)/final/default.safetensors weights/default.safetensors
loco-gpu: $(BIN)/.installed-dev
	$(BIN)/python -m training.loco --cases ../shared/data/cases --out $(GPU_RUN) --oof $(GPU_RUN)/oof --no-train

## loco: leave-one-case-out folds of the same recipe, each scored by brasyn-infer evaluate
loco: $(BIN)/.installed-dev
	$(BIN)/python -m training.loco --cases ../shared/data/cases --minutes 600 --out runs/loco --oof runs/loco/oof \
		-- $(RECIPE)

## oof: each case synthesized by the fold generator that did not see it (the refiner's training inputs; loco-gpu and
## loco already keep them, so this only fills gaps). FOLDS: the generator folds the refiner builds on, runs/gpu
## (train-gpu, export-gpu, loco-gpu: how the default was made) or runs/loco (make loco, CPU only).
FOLDS ?= $(GPU_RUN)
OOF ?= $(FOLDS)/oof
oof: $(BIN)/.installed-dev
	$(BIN)/python -m training.oof --cases ../shared/data/cases --folds $(FOLDS) --out $(OOF)

## trust-folds: leave-one-case-out folds for fitting the trust block on a CPU (how weights/default's was fitted: no
## GPU was lent): the default's architecture and views at 300 steps of batch 4 in float32, two folds at a time
## (about 35 minutes a pair on 2 cores). With a GPU, train-gpu + export-gpu give better folds: TRUST_FOLDS=runs/gpu.
## trust: fit the linear-prior blend and the uncertainty model on TRUST_FOLDS' held-out outputs (training/fit_trust.py),
## print the leave-one-case-out tables (TRUST_FOLDS/trust/trust.md) and write the block into weights/default.json.
TRUST_RECIPE = --dim 16 --views sagittal axial coronal --steps 300 --threads 1 --seed 0
TRUST_FOLDS ?= runs/loco
trust-folds: $(BIN)/.installed-dev
	ls ../shared/data/cases | xargs -P 2 -I{} sh -c 'mkdir -p $(TRUST_FOLDS)/fold-{} && $(BIN)/python -m training.train \
		--cases ../shared/data/cases --holdout {} --minutes 600 $(TRUST_RECIPE) --out $(TRUST_FOLDS)/fold-{} \
		--name fold --checkpoint-dir $(TRUST_FOLDS)/fold-{} > $(TRUST_FOLDS)/fold-{}/train.log 2>&1'
trust: $(BIN)/.installed-dev
	$(BIN)/python -m training.fit_trust --cases ../shared/data/cases --folds $(TRUST_FOLDS) --out $(TRUST_FOLDS)/trust \
		--write weights/default.json

## train-refiner / loco-refiner: the 3D Refiner on the out-of-fold outputs; its leave-one-case-out table
REFINER_RECIPE = --width 8 --crop 48 --batch 2 --steps 80 --bf16 --threads 1 --window 96 --overlap 0.25 --blend gaussian
train-refiner: $(BIN)/.installed-dev
	$(BIN)/python -m training.train_refiner --cases ../shared/data/cases --synthesized $(OOF) $(REFINER_RECIPE) \
		--out weights --name default-refiner
loco-refiner: $(BIN)/.installed-dev
	$(BIN)/python -m training.loco_refiner --cases ../shared/data/cases --generators $(FOLDS) --oof $(OOF) \
		--out $(FOLDS)/refiner -- $(REFINER_RECIPE)

clean:
	rm -rf $(VENV) output .pytest_cache
