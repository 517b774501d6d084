# DeepRes for Scipion. Two entry points, both idempotent on a fresh machine:
#   make demo   install into ./.venv and run the bundled example
#   make test   install into ./.venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deepres-installed
DEMO_DIR ?= demo
DEMO_MODEL := deepres_plugin/tests/data/BM5_1AVX_l_u.pdb.gz

.PHONY: install test demo clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest deepres_plugin/tests

demo: $(STAMP)
	mkdir -p $(DEMO_DIR)
	$(BIN)/deepres simulate $(DEMO_MODEL) --sampling 1.0 --resolution 4.0 --noise 0.08 \
		--out $(DEMO_DIR)/map.mrc --mask-out $(DEMO_DIR)/mask.mrc
	$(BIN)/deepres dataset deepres_plugin/tests/data --range wide --out $(DEMO_DIR)/dataset --workers 2

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
