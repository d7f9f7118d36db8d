# LSM data engine — the two commands: `make demo` and `make test`.
# Each does the whole set-up on a fresh Debian machine (venv, pip, apt), then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Installed after the lock, without their declared deps (those they need are pinned in requirements.lock):
# Resemblyzer declares the `typing` backport and the `webrtcvad` sdist (a compiler); webrtcvad-wheels provides it.
NO_DEPS_PACKAGES := resemblyzer==0.1.4
# Debian packages: synthesizers and real-speech data for the seed corpus, codecs for baselines/effects.
APT_PACKAGES := espeak-ng festival flite festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	codec2 codec2-examples opus-tools ffmpeg \
	tuxpaint-stamps-default fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl pocketsphinx-testdata alsa-utils linphone-common

.PHONY: setup venv apt demo test test-all bench clean-data
.DEFAULT_GOAL := demo

setup: venv apt

# torch first and pinned: its CPU wheel lies on disk; anything looser pulls a multi-GB CUDA build.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps $(NO_DEPS_PACKAGES)
	@touch $@

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: setup
	$(PY) jobs/make_seed_corpus.py --config configs/make_seed_corpus.yaml
	$(PY) jobs/curate.py --config configs/curate.yaml
	$(PY) jobs/encode.py --config configs/encode.yaml
	$(PY) jobs/encode_factors.py --config configs/encode_factors.yaml
	$(PY) jobs/recombine.py --config configs/recombine.yaml
	$(PY) jobs/corpus_report.py --config configs/corpus_report.yaml
	@echo
	@echo "Recombination report (open in a browser): $$(pwd)/data/reports/recombine.html"
	@echo "Corpus report (open in a browser):        $$(pwd)/data/reports/corpus.html"
	@echo "Tables are under $$(pwd)/data/lake (Lance). Query them, e.g.:"
	@echo "  $(PY) -m pipelines.query tables"
	@echo "  $(PY) -m pipelines.query sql \"SELECT speaker, round(sum(duration_s)/3600, 3) AS hours FROM segments GROUP BY 1 ORDER BY 2 DESC LIMIT 10\""
	@echo "  $(PY) -m pipelines.query history segments"
	@echo "  $(PY) jobs/decode_latents.py --lake-root data/lake --checkpoint checkpoints/codec_50hz_2x8555.pt --segment-id <id> --out x.wav"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) bench/curate.py --limit-hours 2 --repeats 3 --cpus 2 --write-results

clean-data:
	rm -rf data/lake
