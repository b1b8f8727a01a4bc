# One-command set-up: every target builds the virtual environment it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CASE ?= examples/BraTS-GLI-00001-000
OUT ?= output

.PHONY: enhancement-study enh-models validate-enhance enhance-judge1 enhance-judge2 ship-any-tumor train-any-tumor train-tumor-adv train-tumor-adv-seg train-tumor-adv-plain train-any-tumor-val train-any-tumor-final validate-tumor tumor-judge1 tumor-judge2 tumor-ssim tumor-any install install-dev demo test unit lint bench docker-test train train-val train-final validate posthoc validate-blend map-study ship train-refiner train-seg train-seg-val train-seg-final ship-seg validation-segmenters validate-routes routes-prep route-table train-seg-any train-seg-any-val train-seg-any-final ship-seg-any train-seg-distill train-seg-distill-val train-seg-distill-final validate-direct ship-seg-distill train-seg-favor validate-favor ship-seg-favor train-any train-any-val train-any-final ship-any validate-seg validate-any fit-any-blend validate-any-blend clean docker-build docker-run mlcube-run
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
	$(BIN)/python benchmarks/uncertainty.py

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

## train: the default generator's recipe (training/train.py), no GPU needed: the validation model (trained on 20 cases,
## VALIDATION held out) and the final model (all 26 cases) side by side, one torch thread each. Two stages: RECIPE
## (about 100 minutes on 2 CPU cores), then TUNE, 1,000 more steps on whole slices with more weight on SSIM, started
## from the first stage's network (about 17 minutes). Each stage resumes from its last state
## (runs/train/<run>/state.pt) when run again. Then: make validate, make posthoc, make validate-blend, make ship.
SHARED ?= ../shared
CASES ?= $(SHARED)/data/cases $(SHARED)/data/brats2018
VALIDATION = Brats18_2013_3_1 Brats18_CBICA_ABM_1 Brats18_CBICA_AME_1 Brats18_TCIA01_425_1 Brats18_TCIA02_135_1 \
	BraTS-GLI-00001-000
COMMON = --dim 16 --views sagittal axial coronal --crop 128 --batch 8 --tumor 0.3 --t1c 0.4 --seed 0
RECIPE = $(COMMON) --steps 6000 --whole-from 0.85 --lr 4e-4
TUNE = $(COMMON) --steps 1000 --whole-from 0 --lr 5e-5 --warmup 50 --ssim-weight 5
TRAIN_RUNS ?= runs/train
THREADS ?= 1
train: $(BIN)/.installed-dev
	$(MAKE) -j2 train-val train-final
train-val: $(BIN)/.installed-dev
	mkdir -p $(TRAIN_RUNS)/val $(TRAIN_RUNS)/val-tuned
	$(BIN)/python -m training.train --cases $(CASES) --holdout $(VALIDATION) $(RECIPE) --threads $(THREADS) \
		--run-dir $(TRAIN_RUNS)/val --out $(TRAIN_RUNS)/val --name val --resume >> $(TRAIN_RUNS)/val/train.log 2>&1
	$(BIN)/python -m training.train --cases $(CASES) --holdout $(VALIDATION) $(TUNE) --threads $(THREADS) \
		--init $(TRAIN_RUNS)/val/val.safetensors --run-dir $(TRAIN_RUNS)/val-tuned --out $(TRAIN_RUNS)/val-tuned \
		--name val --resume >> $(TRAIN_RUNS)/val-tuned/train.log 2>&1
train-final: $(BIN)/.installed-dev
	mkdir -p $(TRAIN_RUNS)/final $(TRAIN_RUNS)/final-tuned
	$(BIN)/python -m training.train --cases $(CASES) $(RECIPE) --threads $(THREADS) --run-dir $(TRAIN_RUNS)/final \
		--out $(TRAIN_RUNS)/final --name default --refiner default-refiner --no-export --resume \
		>> $(TRAIN_RUNS)/final/train.log 2>&1
	$(BIN)/python -m training.train --cases $(CASES) $(TUNE) --threads $(THREADS) \
		--init $(TRAIN_RUNS)/final/default.safetensors --run-dir $(TRAIN_RUNS)/final-tuned \
		--out $(TRAIN_RUNS)/final-tuned --name default --refiner default-refiner --no-export --resume \
		>> $(TRAIN_RUNS)/final-tuned/train.log 2>&1

## validate: on the VALIDATION cases, fit the map's settings (training/validate.py, written into the validation
## model's manifest), then score the validation model with `brasyn-infer evaluate` against the linear fit on its own
## training cases -> $(TRAIN_RUNS)/validation/report/report.md. About 40 minutes on 2 cores.
## posthoc: after validate, what a blend with the linear fit, a light smoothing, or (ALSO=DIR, another model's
## validation volumes) the mean of two models would do to the validation model's outputs, and the blend per modality
## that keeps every pair above the floor (training/studies/posthoc_study.py) -> $(TRAIN_RUNS)/posthoc/posthoc.md. About 10
## minutes on 2 cores.
## validate-blend: the validation model exported with BLEND (the export arguments posthoc.md gives), scored as
## validate scores it -> $(TRAIN_RUNS)/validation/report-blend/report.md, its outputs and maps kept in
## volumes-blend; then the tone correction fitted on those outputs, scored on them and leave-one-case-out
## (posthoc_study.py --tone) -> $(TRAIN_RUNS)/posthoc-blend/posthoc.md. About 35 minutes on 2 cores.
## map-study: after validate-blend, whether a map built after the network (the views' spread weighted otherwise,
## features of the output, the error expected at its level, a fit of them) ranks the errors of volumes-blend better
## than the shipped map, the fitted ones leave-one-case-out (training/studies/map_study.py) ->
## $(TRAIN_RUNS)/map-study/map_study.md. About 15 minutes on 2 cores.
## ship: the final model (all 26 cases) -> weights/default.{onnx,json,safetensors}, with the validation's map settings
## and BLEND.
VAL_RUN = $(TRAIN_RUNS)/val-tuned
FINAL_RUN = $(TRAIN_RUNS)/final-tuned
BLEND ?= --blend t1c=0.6
comma := ,
empty :=
space := $(empty) $(empty)
EVALUATE = $(BIN)/brasyn-infer evaluate $(TRAIN_RUNS)/validation/data --only $(subst $(space),$(comma),$(VALIDATION)) \
	--fit-on training --drop all --baseline linear --quiet
validate: $(BIN)/.installed-dev
	$(BIN)/python -m training.validate --cases $(CASES) --holdout $(VALIDATION) --weights $(VAL_RUN)/val.json \
		--out $(TRAIN_RUNS)/validation
	mkdir -p $(TRAIN_RUNS)/validation/data
	for root in $(CASES); do for case in $$root/*/; do ln -sfn $$(realpath $$case) $(TRAIN_RUNS)/validation/data/; done; done
	$(EVALUATE) $(TRAIN_RUNS)/validation/report --weights $(VAL_RUN)/val.json \
		--save-volumes $(TRAIN_RUNS)/validation/volumes
posthoc: $(BIN)/.installed-dev
	$(BIN)/python -m training.studies.posthoc_study --cases $(CASES) --weights $(VAL_RUN)/val.json \
		--volumes $(TRAIN_RUNS)/validation/volumes $(if $(ALSO),--also $(ALSO)) --alpha 0.5 0.6 0.7 0.8 0.9 1.0 \
		--sigma 0.6 --out $(TRAIN_RUNS)/posthoc --jobs 2
validate-blend: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(VAL_RUN)/val.safetensors --out $(VAL_RUN) --name val-blend \
		--uncertainty-from $(VAL_RUN)/val.json $(BLEND)
	$(EVALUATE) $(TRAIN_RUNS)/validation/report-blend --weights $(VAL_RUN)/val-blend.json \
		--save-volumes $(TRAIN_RUNS)/validation/volumes-blend
	$(BIN)/python -m training.studies.posthoc_study --cases $(CASES) --weights $(VAL_RUN)/val-blend.json \
		--volumes $(TRAIN_RUNS)/validation/volumes-blend --alpha 1 --sigma --tone --out $(TRAIN_RUNS)/posthoc-blend --jobs 2
map-study: $(BIN)/.installed-dev
	$(BIN)/python -m training.studies.map_study --cases $(CASES) --weights $(VAL_RUN)/val-blend.json \
		--volumes $(TRAIN_RUNS)/validation/volumes-blend --out $(TRAIN_RUNS)/map-study
ship: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(FINAL_RUN)/default.safetensors --out weights --name default \
		--refiner default-refiner --uncertainty-from $(VAL_RUN)/val.json $(BLEND)
	$(BIN)/python -m training.fp16_checkpoint $(FINAL_RUN)/default.safetensors weights/default.safetensors

## train-refiner: the 3D Refiner on generator outputs (a folder of <case>/<case>-<mod>.nii.gz, e.g. what
## `brasyn-infer evaluate --save-volumes DIR` keeps of held-out cases), SYNTHESIZED=DIR
REFINER_RECIPE = --width 8 --crop 48 --batch 2 --steps 80 --threads 1 --window 96 --overlap 0.25 --blend gaussian
SYNTHESIZED ?= $(TRAIN_RUNS)/validation/volumes
train-refiner: $(BIN)/.installed-dev
	$(BIN)/python -m training.train_refiner --cases $(CASES) --synthesized $(SYNTHESIZED) $(REFINER_RECIPE) \
		--out weights --name default-refiner


## train-any: the companion generator for cases with two or three modalities missing (weights/default-any), the same
## HFGAN residual model with a linear prior per pattern and target in its graph, trained from scratch on samples with
## two (60%) or three (40%) inputs dropped, one torch thread: the validation model (ANY_VALIDATION held out: the
## generator's validation cases and BraTS2021_00006, so that the segmenter's held-out cases are held out from both)
## then the final one on all 29 cases, the same recipe. About 60 minutes each on one core beside other work; each
## resumes from runs/any/<run>/state.pt. ship-any: the final model -> weights/default-any.{onnx,json,safetensors}
## (the checkpoint in fp16; ANY_SHIP: another checkpoint) with the blend toward the stand-in of ANY_BLEND
## (fit-any-blend), run on the sagittal view alone (ANY_VIEWS: a case with three missing costs three
## syntheses, so one view each keeps it near a one-missing case with the default's three views).
ANY_CASES ?= $(SHARED)/data/cases $(SHARED)/data/brats2018 $(SHARED)/data/brats2021
ANY_VALIDATION = $(VALIDATION) BraTS2021_00006
ANY_RECIPE = $(COMMON) --missing-counts 0 0.6 0.4 --steps 1800 --whole-from 0.85 --lr 4e-4 --warmup 100
ANY_RUNS ?= runs/any
train-any: $(BIN)/.installed-dev
	$(MAKE) train-any-val
	$(MAKE) train-any-final
train-any-val: $(BIN)/.installed-dev
	mkdir -p $(ANY_RUNS)/val
	$(BIN)/python -m training.train --cases $(ANY_CASES) --holdout $(ANY_VALIDATION) $(ANY_RECIPE) --threads $(THREADS) \
		--run-dir $(ANY_RUNS)/val --out $(ANY_RUNS)/val --name val-any --resume >> $(ANY_RUNS)/val/train.log 2>&1
train-any-final: $(BIN)/.installed-dev
	mkdir -p $(ANY_RUNS)/final
	$(BIN)/python -m training.train --cases $(ANY_CASES) $(ANY_RECIPE) --threads $(THREADS) \
		--run-dir $(ANY_RUNS)/final --out $(ANY_RUNS)/final --name default-any --no-export --resume \
		>> $(ANY_RUNS)/final/train.log 2>&1
ANY_VIEWS = --views sagittal
ANY_SHIP ?= $(ANY_RUNS)/final/default-any.safetensors
ANY_BLEND ?= $(ANY_RUNS)/val/copy-blend.json
ship-any: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(ANY_SHIP) --out weights --name default-any $(ANY_VIEWS)
	$(BIN)/python -m training.fp16_checkpoint $(ANY_SHIP) weights/default-any.safetensors
	$(BIN)/python -m training.fit_copy_blend --apply $(ANY_BLEND) --write weights/default-any.json

## VALDATA: every case of ANY_CASES, linked into one folder (what the evaluations read)
VALDATA = $(TRAIN_RUNS)/validation/all-data
$(VALDATA):
	mkdir -p $(VALDATA)
	for root in $(ANY_CASES); do for case in $$root/*/; do ln -sfn $$(realpath $$case) $(VALDATA)/; done; done

## train-any-tumor: the companion fine-tuned to draw the tumor (issue 41): from its validation model
## (weights/validation/val-any.safetensors) and from the shipped one (weights/default-any.safetensors), 1,500 steps on
## axial crops (tumor-centred with probability 0.7, t1c the target with probability 0.7, one missing in half the samples,
## two or three in the rest) with UMMGAT's tumor-aware L1 (inside the expert tumor, twice inside its enhancing part)
## and a segmentation-consistency term: the validation segmenter (trained without the held-out cases, frozen) reads
## the real inputs with the synthesis in place, its cross-entropy + region Dice against the expert labels added to
## the loss (training/losses.consistency_loss). The validation model and the final one side by side, one torch thread
## each; each resumes from runs/any-tumor/<run>/state.pt.
TUMOR_PLAIN_RECIPE = --dim 16 --views axial --crop 128 --batch 8 --tumor 0.7 --t1c 0.7 --missing-counts 0.5 0.3 0.2 \
	--steps 1500 --whole-from 1.0 --lr 1e-4 --warmup 50 --seed 0 --lesion-weight 1 --enhancing-weight 2
TUMOR_RECIPE = $(TUMOR_PLAIN_RECIPE) --seg-weight 1 --seg-judge weights/validation/segmenter-val.safetensors
TUMOR_RUNS ?= runs/any-tumor
train-any-tumor: $(BIN)/.installed-dev
	$(MAKE) -j2 train-any-tumor-val train-any-tumor-final
train-any-tumor-val: $(BIN)/.installed-dev
	mkdir -p $(TUMOR_RUNS)/val
	$(BIN)/python -m training.train --cases $(ANY_CASES) --holdout $(ANY_VALIDATION) $(TUMOR_RECIPE) \
		--init weights/validation/val-any.safetensors --threads $(THREADS) --run-dir $(TUMOR_RUNS)/val \
		--out $(TUMOR_RUNS)/val --name val-any-tumor --no-export --resume >> $(TUMOR_RUNS)/val/train.log 2>&1
train-any-tumor-final: $(BIN)/.installed-dev
	mkdir -p $(TUMOR_RUNS)/final
	$(BIN)/python -m training.train --cases $(ANY_CASES) $(TUMOR_RECIPE) --init weights/default-any.safetensors \
		--threads $(THREADS) --run-dir $(TUMOR_RUNS)/final --out $(TUMOR_RUNS)/final --name default-any \
		--no-export --resume >> $(TUMOR_RUNS)/final/train.log 2>&1

## train-tumor-adv: two validation fine-tunes of the companion with an adversarial term on the tumor patches (a
## conditional PatchGAN, training/losses.py, weight 0.05), side by side, one thread each: TUMOR_RECIPE with it
## ($(TUMOR_ADV_RUNS)/seg: the segmentation-consistency term kept) and without the segmentation term
## ($(TUMOR_ADV_RUNS)/plain: the lesion terms and the adversarial one). Score each with validate-tumor, e.g.
## make validate-tumor TUMOR_RUNS=$(TUMOR_ADV_RUNS) TUMOR_VAL=$(TUMOR_ADV_RUNS)/plain/val-any-tumor.safetensors TUMOR_TAG=adv-plain.
TUMOR_ADV_RUNS ?= runs/tumor-adv
TUMOR_ADV = --adv-weight 0.05
train-tumor-adv: $(BIN)/.installed-dev
	$(MAKE) -j2 train-tumor-adv-seg train-tumor-adv-plain
train-tumor-adv-seg train-tumor-adv-plain: train-tumor-adv-%: $(BIN)/.installed-dev
	mkdir -p $(TUMOR_ADV_RUNS)/$*
	$(BIN)/python -m training.train --cases $(ANY_CASES) --holdout $(ANY_VALIDATION) \
		$(if $(filter seg,$*),$(TUMOR_RECIPE),$(TUMOR_PLAIN_RECIPE)) $(TUMOR_ADV) \
		--init weights/validation/val-any.safetensors --threads $(THREADS) --run-dir $(TUMOR_ADV_RUNS)/$* \
		--out $(TUMOR_ADV_RUNS)/$* --name val-any-tumor --no-export --resume >> $(TUMOR_ADV_RUNS)/$*/train.log 2>&1

## ship-any-tumor: the fine-tuned final companion -> weights/default-any.{onnx,json,safetensors} (axial view, fp16
## checkpoint, the blend toward the stand-in of weights/validation/copy-blend.json; it replaces the --init of
## train-any-tumor-final, so keep runs/any/final/default-any.safetensors to repeat the recipe), and the default told to hand a missing t1c to it (TUMOR_TARGETS, chosen by make validate-tumor). Not run so far:
## the first fine-tune traded the t1c's SSIM for a blob (docs/research-log.md).
TUMOR_TARGETS ?= t1c
ship-any-tumor: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(TUMOR_RUNS)/final/default-any.safetensors --out weights \
		--name default-any --views axial
	$(BIN)/python -m training.fp16_checkpoint $(TUMOR_RUNS)/final/default-any.safetensors weights/default-any.safetensors
	$(BIN)/python -m training.fit_copy_blend --apply weights/validation/copy-blend.json --write weights/default-any.json
	$(BIN)/python -m training.route_table --companion-targets $(TUMOR_TARGETS) --default weights/default.json

## validate-tumor: the fine-tuned companion's validation model (TUMOR_VAL; TUMOR_TAG names the output folders, so that
## TUMOR_VAL=weights/validation/val-any.safetensors TUMOR_TAG=before scores the model it started from), exported on the
## axial view, with t1c dropped on the segmenter's held-out cases (SEG_VALIDATION): segmented by the validation
## segmenter, whose frozen copy the loss read (judge 1), and by the missing-sequence segmenter's validation model
## reading all four, which no generator loss used (judge 2), beside the real t1c, the copy and the linear fit ->
## $(TUMOR_RUNS)/<tag>-judge1/report.md and <tag>-judge2/; then t1c dropped on the generator's held-out cases (VALIDATION)
## against the linear fit on its training cases -> <tag>-ssim/report.md; and the companion's own tables (ANY_VALIDATION,
## two missing and one left, against the linear fit and the copy) -> <tag>-any/report.md. Needs make
## validation-segmenters. About 40 minutes on 2 cores.
TUMOR_VAL ?= $(TUMOR_RUNS)/val/val-any-tumor.safetensors
TUMOR_TAG ?= tumor
TUMOR_WEIGHTS = $(TUMOR_RUNS)/$(TUMOR_TAG)-weights/val-any-1v.json
validate-tumor: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/python -m training.export_checkpoint $(TUMOR_VAL) --out $(TUMOR_RUNS)/$(TUMOR_TAG)-weights --name val-any-1v \
		--views axial
	$(BIN)/python -m training.fit_copy_blend --apply weights/validation/copy-blend.json --write $(TUMOR_WEIGHTS)
	$(MAKE) -j2 tumor-judge1 tumor-judge2
	$(MAKE) -j2 tumor-ssim tumor-any
tumor-judge1 tumor-judge2: tumor-judge%: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(TUMOR_RUNS)/$(TUMOR_TAG)-judge$* --only $(subst $(space),$(comma),$(SEG_VALIDATION)) \
		--weights $(TUMOR_WEIGHTS) --drop t1c --baseline linear,copy --segment --direct-segmenter none \
		--segmenter $(if $(filter 1,$*),$(SEG_RUNS)/val/segmenter-val.json,$(SEG_ANY_RUNS)/val/segmenter-any-val.json) \
		--no-uncertainty --quiet --save-volumes $(TUMOR_RUNS)/$(TUMOR_TAG)-volumes$*
tumor-ssim: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(TUMOR_RUNS)/$(TUMOR_TAG)-ssim --only $(subst $(space),$(comma),$(VALIDATION)) \
		--weights $(TUMOR_WEIGHTS) --drop t1c --baseline linear --fit-on training --no-uncertainty --quiet
tumor-any: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(TUMOR_RUNS)/$(TUMOR_TAG)-any --only $(subst $(space),$(comma),$(ANY_VALIDATION)) \
		--weights $(TUMOR_WEIGHTS) --fit-on training --drop $(ANY_DROP) --baseline linear,copy --no-uncertainty --quiet

## enhancement-study (issue 41, training/studies/enhancement_study.py): the shipped default's t1c for SEG_VALIDATION
## (evaluate --drop t1c --save-volumes, judge 1 scoring it as validate-tumor does), then the same t1c with the
## missing-sequence segmenter's enhancing tumor (the kept validation model: it never saw these cases) raised to real
## t1c's enhancement contrast, read by judge 1 (segmenter-val) and judge 2 (stage 1's missing-sequence validation
## model, from git as in the research log); --mode level and gain. About 25 minutes on 2 cores. Needs make
## validation-segmenters (judge 1).
ENH_RUNS ?= runs/enh
ENH_STUDY = $(BIN)/python -m training.studies.enhancement_study --cases $(SEG_CASES) --exclude TCGA-DU-7294 \
	--volumes $(ENH_RUNS)/default-volumes --direct $(ENH_GUIDE) \
	--judge $(SEG_RUNS)/val/segmenter-val.json --judge $(ENH_JUDGE2)
ENH_GUIDE = $(ENH_RUNS)/direct/segmenter-any-val.json
ENH_JUDGE2 = $(ENH_RUNS)/judge2/segmenter-any-val.json
enhancement-study: enh-models $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(ENH_RUNS)/default-judge1 --only $(subst $(space),$(comma),$(SEG_VALIDATION)) \
		--weights weights/default.json --drop t1c --baseline none --segment --direct-segmenter none \
		--segmenter $(SEG_RUNS)/val/segmenter-val.json --no-uncertainty --quiet --save-volumes $(ENH_RUNS)/default-volumes
	$(ENH_STUDY) --mode level > $(ENH_RUNS)/study-level.log
	tail -n 5 $(ENH_RUNS)/study-level.log
	$(ENH_STUDY) --mode gain > $(ENH_RUNS)/study-gain.log
	tail -n 5 $(ENH_RUNS)/study-gain.log
## enh-models: the guide (the missing-sequence segmenter's kept validation model) and judge 2 (stage 1's, from git)
enh-models: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint weights/validation/segmenter-any-val.safetensors --out $(ENH_RUNS)/direct \
		--name segmenter-any-val
	mkdir -p $(ENH_RUNS)/judge2
	git show 1555950:weights/validation/segmenter-any-val.safetensors > $(ENH_RUNS)/judge2/stage1.safetensors
	$(BIN)/python -m training.export_checkpoint $(ENH_RUNS)/judge2/stage1.safetensors --out $(ENH_RUNS)/judge2 \
		--name segmenter-any-val

## validate-enhance (issue 41): the default's enhancement stage as the product runs it (evaluate --enhance), its guide
## the missing-sequence segmenter's validation model (it never saw these cases), on SEG_VALIDATION with t1c dropped:
## the model and model+enhance rows beside the linear fit, the copy, the direct route and the real t1c, segmented by
## judge 1 (segmenter-val) and judge 2 (as in enhancement-study) -> $(ENH_RUNS)/validate-judge{1,2}/report.md.
## About 20 to 25 minutes on 2 cores. Needs make validation-segmenters (judge 1).
validate-enhance: enh-models $(VALDATA)
	$(MAKE) -j2 enhance-judge1 enhance-judge2
enhance-judge1 enhance-judge2: enhance-judge%: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(ENH_RUNS)/validate-judge$* --only $(subst $(space),$(comma),$(SEG_VALIDATION)) \
		--weights weights/default.json --drop t1c --baseline linear,copy --segment --direct-segmenter $(ENH_GUIDE) \
		--segmenter $(if $(filter 1,$*),$(SEG_RUNS)/val/segmenter-val.json,$(ENH_JUDGE2)) --enhance --guide $(ENH_GUIDE) \
		--no-uncertainty --quiet

## validate-seg: the downstream protocol on the segmenter's held-out cases (SEG_VALIDATION, one missing, each modality
## in turn): segmented by the validation segmenter with the real sequences, the default's synthesis, a copy and the
## linear fit (fitted leave-one-case-out on the 29 cases) -> $(SEG_RUNS)/downstream/report.md. The default's
## network saw these cases in training (its validation model is not kept): the synthesized row is optimistic.
## validate-any: the companion's validation model (one view) on ANY_VALIDATION, two missing (all six pairs) and one
## left (four patterns), against the linear fit for each pattern (fitted on its training cases) and the copy ->
## $(ANY_RUNS)/validation/report.md, its outputs kept in $(ANY_RUNS)/volumes (ANY_VAL: the checkpoint, e.g. the
## fp16 copy weights/validation/val-any.safetensors). fit-any-blend: from those outputs, the
## blend toward the stand-in per pattern and sequence (training/fit_copy_blend.py; scored in sample and leaving each
## case out) -> $(ANY_BLEND), and $(ANY_RUNS)/val/val-any-1v-blend.json (the validation model with it); ship-any
## puts the block into weights/default-any.json. validate-any-blend: evaluate that manifest on ANY_VALIDATION ->
## $(ANY_RUNS)/validation-blend/report.md (ANY_DROP, ANY_BLEND_ONLY: the cases).
validate-seg: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(SEG_RUNS)/downstream --only $(subst $(space),$(comma),$(SEG_VALIDATION)) \
		--drop all --baseline linear,copy --segment --segmenter $(SEG_RUNS)/val/segmenter-val.json --no-uncertainty --quiet
ANY_VAL ?= $(ANY_RUNS)/val/val-any.safetensors
validate-any: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/python -m training.export_checkpoint $(ANY_VAL) --out $(ANY_RUNS)/val \
		--name val-any-1v $(ANY_VIEWS)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(ANY_RUNS)/validation --only $(subst $(space),$(comma),$(ANY_VALIDATION)) \
		--weights $(ANY_RUNS)/val/val-any-1v.json --fit-on training --drop $(ANY_DROP) --baseline linear,copy \
		--no-uncertainty --quiet --save-volumes $(ANY_RUNS)/volumes
ANY_DROP ?= pairs,singles
fit-any-blend: $(BIN)/.installed-dev
	$(BIN)/python -m training.fit_copy_blend --cases $(ANY_CASES) --volumes $(ANY_RUNS)/volumes \
		--weights $(ANY_RUNS)/val/val-any-1v.json --report $(ANY_BLEND) --write $(ANY_RUNS)/val/val-any-1v-blend.json --jobs 2
ANY_BLEND_ONLY ?= $(ANY_VALIDATION)
validate-any-blend: $(BIN)/.installed-dev $(VALDATA)
	$(BIN)/brasyn-infer evaluate $(VALDATA) $(ANY_RUNS)/validation-blend --only $(subst $(space),$(comma),$(ANY_BLEND_ONLY)) \
		--weights $(ANY_RUNS)/val/val-any-1v-blend.json --fit-on training --drop $(ANY_DROP) --baseline linear,copy \
		--no-uncertainty --quiet

## train-seg: the embedded tumor segmenter (training/train_segmenter.py, a 2.5D U-Net), one torch thread: the validation
## model (SEG_VALIDATION held out and scored at the end) then the shipped one (every case with an expert segmentation),
## the same recipe; each resumes from runs/seg/<run>/state.pt. About 25 minutes each on one CPU core beside other work.
## TCGA-DU-7294's labels are an algorithm's: left out. ship-seg: the final model -> weights/segmenter.{onnx,json}.
SEG_CASES ?= $(SHARED)/data/brats2018 $(SHARED)/data/brats2021 $(SHARED)/data/cases
SEG_VALIDATION = Brats18_2013_3_1 Brats18_CBICA_ABM_1 Brats18_CBICA_AME_1 Brats18_TCIA01_425_1 Brats18_TCIA02_135_1 \
	BraTS2021_00006
SEG_RECIPE = --exclude TCGA-DU-7294 --widths 16 32 64 128 192 --context 1 --crop 128 --batch 8 --lr 2e-3 --steps 2000 \
	--tumor 0.8 --seed 0
SEG_RUNS ?= runs/seg
train-seg: $(BIN)/.installed-dev
	$(MAKE) train-seg-val
	$(MAKE) train-seg-final
train-seg-val: $(BIN)/.installed-dev
	mkdir -p $(SEG_RUNS)/val
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) --holdout $(SEG_VALIDATION) $(SEG_RECIPE) \
		--threads $(THREADS) --run-dir $(SEG_RUNS)/val --out $(SEG_RUNS)/val --name segmenter-val --resume \
		>> $(SEG_RUNS)/val/train.log 2>&1
train-seg-final: $(BIN)/.installed-dev
	mkdir -p $(SEG_RUNS)/final
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) $(SEG_RECIPE) --threads $(THREADS) \
		--run-dir $(SEG_RUNS)/final --out $(SEG_RUNS)/final --name segmenter --no-export --resume \
		>> $(SEG_RUNS)/final/train.log 2>&1
ship-seg: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(SEG_RUNS)/final/segmenter.safetensors --out weights --name segmenter
	$(BIN)/python -m training.fp16_checkpoint $(SEG_RUNS)/val/segmenter-val.safetensors \
		weights/validation/segmenter-val.safetensors

## validation-segmenters: the kept validation segmenters (weights/validation, fp16) exported to ONNX in $(SEG_RUNS)/val
## and $(SEG_ANY_RUNS)/val, where validate-seg and validate-routes read them: the tables re-scored without training.
validation-segmenters: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint weights/validation/segmenter-val.safetensors --out $(SEG_RUNS)/val \
		--name segmenter-val
	$(BIN)/python -m training.export_checkpoint weights/validation/segmenter-any-val.safetensors \
		--out $(SEG_ANY_RUNS)/val --name segmenter-any-val

## train-seg-any: the missing-sequence segmenter (weights/segmenter-any): the same U-Net and data as train-seg, with
## four availability planes as input and each crop keeping one of the 15 availability patterns (--any-pattern), 3,000
## steps; the validation model (SEG_VALIDATION held out and scored for all 15 patterns) and the shipped one side by
## side, one torch thread each (52 minutes each beside other work). ship-seg-any: the final model -> weights/segmenter-any.{onnx,json};
## the validation model's checkpoint in fp16 -> weights/validation/segmenter-any-val.safetensors.
SEG_ANY_RECIPE = --exclude TCGA-DU-7294 --widths 16 32 64 128 192 --context 1 --crop 128 --batch 8 --lr 2e-3 \
	--steps 3000 --tumor 0.8 --seed 0 --any-pattern
SEG_ANY_RUNS ?= runs/seg-any
train-seg-any: $(BIN)/.installed-dev
	$(MAKE) -j2 train-seg-any-val train-seg-any-final
train-seg-any-val: $(BIN)/.installed-dev
	mkdir -p $(SEG_ANY_RUNS)/val
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) --holdout $(SEG_VALIDATION) $(SEG_ANY_RECIPE) \
		--threads $(THREADS) --run-dir $(SEG_ANY_RUNS)/val --out $(SEG_ANY_RUNS)/val --name segmenter-any-val --resume \
		>> $(SEG_ANY_RUNS)/val/train.log 2>&1
train-seg-any-final: $(BIN)/.installed-dev
	mkdir -p $(SEG_ANY_RUNS)/final
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) $(SEG_ANY_RECIPE) --threads $(THREADS) \
		--run-dir $(SEG_ANY_RUNS)/final --out $(SEG_ANY_RUNS)/final --name segmenter-any --no-export --resume \
		>> $(SEG_ANY_RUNS)/final/train.log 2>&1
## train-seg-distill: the missing-sequence segmenter taught by the full one (issue 42): each model of train-seg-any
## trained 2,000 more steps (--seed 1: other batches, lr 1e-3) with a distillation term, the frozen full-input
## segmenter's softmax on the same crop with all four sequences (--teacher; temperature 2). The validation model
## starts from weights/validation/segmenter-any-val.safetensors, taught by segmenter-val; the shipped one from
## weights/segmenter-any.onnx, taught by weights/segmenter.onnx (the torch weights recovered from the ONNX graphs by
## training/onnx_segmenter.py, parity checked). Side by side, one torch thread each (about 50 minutes each).
## validate-direct scores the validation model's direct route on SEG_VALIDATION for every pattern and keeps the
## complete route's scores from the routes block it replaces; ship-seg-distill ships the final model like ship-seg-any.
## train-seg-favor (stage 3): the same from the models train-seg-distill shipped, with other batches (seed 2) and
## BraSyn's case without t1c (t1n+t2f+t2w) kept in 30% of the crops (the rest: any of the 15 patterns, as before);
## validate-favor and ship-seg-favor score and ship it like validate-direct and ship-seg-distill. Measured, not
## shipped: ET without t1c fell (0.415 -> 0.353; docs/research-log.md).
SEG_DISTILL_SEED ?= 1
SEG_DISTILL_FAVOR ?=
SEG_DISTILL_RECIPE = --exclude TCGA-DU-7294 --widths 16 32 64 128 192 --context 1 --crop 128 --batch 8 --lr 1e-3 \
	--steps 2000 --tumor 0.8 --seed $(SEG_DISTILL_SEED) --any-pattern --distill-weight 1 --temperature 2 \
	$(SEG_DISTILL_FAVOR)
SEG_DISTILL_RUNS ?= runs/seg-distill
SEG_FAVOR = SEG_DISTILL_RUNS=runs/seg-favor SEG_DISTILL_SEED=2 SEG_DISTILL_FAVOR="--favor t1n+t2f+t2w --favor-share 0.3"
train-seg-favor: $(BIN)/.installed-dev
	$(MAKE) train-seg-distill $(SEG_FAVOR)
validate-favor: $(BIN)/.installed-dev
	$(MAKE) validate-direct $(SEG_FAVOR)
ship-seg-favor: $(BIN)/.installed-dev
	$(MAKE) ship-seg-distill $(SEG_FAVOR)
train-seg-distill: $(BIN)/.installed-dev
	$(MAKE) -j2 train-seg-distill-val train-seg-distill-final
train-seg-distill-val: $(BIN)/.installed-dev
	mkdir -p $(SEG_DISTILL_RUNS)/val
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) --holdout $(SEG_VALIDATION) $(SEG_DISTILL_RECIPE) \
		--init weights/validation/segmenter-any-val.safetensors --teacher weights/validation/segmenter-val.safetensors \
		--no-score --threads $(THREADS) --run-dir $(SEG_DISTILL_RUNS)/val --out $(SEG_DISTILL_RUNS)/val \
		--name segmenter-any-val --resume >> $(SEG_DISTILL_RUNS)/val/train.log 2>&1
train-seg-distill-final: $(BIN)/.installed-dev
	mkdir -p $(SEG_DISTILL_RUNS)/final
	$(BIN)/python -m training.onnx_segmenter weights/segmenter-any.json $(SEG_DISTILL_RUNS)/shipped/segmenter-any.safetensors
	$(BIN)/python -m training.onnx_segmenter weights/segmenter.json $(SEG_DISTILL_RUNS)/shipped/segmenter.safetensors
	$(BIN)/python -m training.train_segmenter --cases $(SEG_CASES) $(SEG_DISTILL_RECIPE) \
		--init $(SEG_DISTILL_RUNS)/shipped/segmenter-any.safetensors --teacher $(SEG_DISTILL_RUNS)/shipped/segmenter.safetensors \
		--threads $(THREADS) --run-dir $(SEG_DISTILL_RUNS)/final --out $(SEG_DISTILL_RUNS)/final --name segmenter-any \
		--no-export --resume >> $(SEG_DISTILL_RUNS)/final/train.log 2>&1

validate-direct: $(BIN)/.installed-dev
	$(BIN)/python -m training.route_table --complete-from weights/segmenter-any.json \
		--direct $(SEG_DISTILL_RUNS)/val/segmenter-any-val.json --cases $(SEG_CASES) --only $(SEG_VALIDATION) \
		--write $(SEG_DISTILL_RUNS)/val/segmenter-any-val.json --table $(SEG_DISTILL_RUNS)/routes.md
ship-seg-distill: $(BIN)/.installed-dev
	$(MAKE) ship-seg-any SEG_ANY_RUNS=$(SEG_DISTILL_RUNS)

## validate-routes: both routes of `segment` on SEG_VALIDATION for every pattern of missing sequences (evaluate --drop
## every --segment): `direct` (the validation missing-sequence segmenter on what is left) and `complete` (the default's
## synthesis, the companion's validation model for two or three missing, then the validation segmenter); then
## training/route_table.py chooses the route per pattern -> $(SEG_ANY_RUNS)/routes.md, and the routes block into the
## validation model's manifest (ship-seg-any copies it into weights/segmenter-any.json). About an hour on 2 cores.
ROUTES = $(SEG_ANY_RUNS)/routes
## The six cases in two halves, evaluated side by side, each pinned to one core (taskset), into report-0 and report-1.
ROUTES_ONLY_0 = Brats18_2013_3_1,Brats18_CBICA_ABM_1,Brats18_TCIA01_425_1
ROUTES_ONLY_1 = Brats18_CBICA_AME_1,Brats18_TCIA02_135_1,BraTS2021_00006
validate-routes: $(BIN)/.installed-dev $(VALDATA) $(ROUTES)/weights/default.json
	$(MAKE) -j2 routes-report-0 routes-report-1
	$(MAKE) route-table
routes-report-%: $(BIN)/.installed-dev $(VALDATA) $(ROUTES)/weights/default.json
	taskset -c $$(( $* % $$(nproc) )) $(BIN)/brasyn-infer evaluate $(VALDATA) $(ROUTES)/report-$* \
		--only $(ROUTES_ONLY_$*) --drop every --segment --segmenter $(SEG_RUNS)/val/segmenter-val.json \
		--direct-segmenter $(SEG_ANY_RUNS)/val/segmenter-any-val.json --weights $(ROUTES)/weights/default.json \
		--baseline none --no-uncertainty --quiet
routes-prep: $(ROUTES)/weights/default.json
$(ROUTES)/weights/default.json: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint weights/validation/val-any.safetensors --out $(ANY_RUNS)/val \
		--name val-any-1v $(ANY_VIEWS)
	$(BIN)/python -m training.fit_copy_blend --apply weights/validation/copy-blend.json --write $(ANY_RUNS)/val/val-any-1v.json
	$(BIN)/python -m training.route_table --prepare --default weights/default.json \
		--companion $(ANY_RUNS)/val/val-any-1v.json --out $(ROUTES)/weights
route-table: $(BIN)/.installed-dev
	$(BIN)/python -m training.route_table --report $(ROUTES)/report-0 $(ROUTES)/report-1 --cases $(SEG_CASES) --only $(SEG_VALIDATION) \
		--direct $(SEG_ANY_RUNS)/val/segmenter-any-val.json --write $(SEG_ANY_RUNS)/val/segmenter-any-val.json \
		--table $(SEG_ANY_RUNS)/routes.md
ship-seg-any: $(BIN)/.installed-dev
	$(BIN)/python -m training.export_checkpoint $(SEG_ANY_RUNS)/final/segmenter-any.safetensors --out weights \
		--name segmenter-any
	$(BIN)/python -m training.route_table --routes-from $(SEG_ANY_RUNS)/val/segmenter-any-val.json \
		--write weights/segmenter-any.json
	$(BIN)/python -m training.fp16_checkpoint $(SEG_ANY_RUNS)/val/segmenter-any-val.safetensors \
		weights/validation/segmenter-any-val.safetensors

clean:
	rm -rf $(VENV) output .pytest_cache
