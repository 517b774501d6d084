# DeepRes for Scipion. Two entry points, both idempotent on a fresh machine:
#   make demo   install into ./.venv and run the bundled example
#   make test   install into ./.venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deepres-installed
DEMO_DIR ?= demo
EXAMPLE := deepres_plugin/tests/data

.PHONY: install test test-core demo clean

# System packages for optional tests, each installed with apt-get when its command is missing
# and we are root; anywhere else, or if that fails, set-up goes on and those tests are skipped:
# - Xvfb, for the GUI test;
# - single-node Slurm (Debian's slurm-wlm daemons), for the Scipion queue test, which starts its
#   own cluster in a temporary folder (about 7 s);
# - RELION 3.1 (CPU only: relion_project, relion_reconstruct, relion_postprocess), for
#   benchmarks/relion_pipeline.py and its round-trip test.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
# $(call apt_install,COMMAND,PACKAGES,APT OPTIONS,WHAT FOR)
define apt_install
	@if ! command -v $(1) >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "apt-get install $(2) (for $(4))"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $(3) $(2) >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(3) $(2) >/dev/null 2>&1; } || \
			echo "could not install $(2): $(4) will be skipped"; \
	fi
endef

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[compute,test]'
	$(call apt_install,Xvfb,xvfb,,the GUI test)
	$(call apt_install,sbatch,$(SLURM_PACKAGES),--no-install-recommends,the Scipion queue test)
	$(call apt_install,relion_project,relion,,the RELION pipeline test)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check deepres_plugin benchmarks
	$(BIN)/python -m pytest -rs deepres_plugin/tests

# The fast core layer only (no Scipion runs, cluster, GUI or other programs; the layers are
# listed in deepres_plugin/tests/conftest.py): pytest -m "scipion or gui" and so on pick others.
test-core: $(STAMP)
	$(BIN)/python -m pytest -rs -m core deepres_plugin/tests

# The example map holds two copies of a protein, low-passed at 4 A and at 8 A
# (benchmarks/make_example_map.py); the shipped wide network estimates its local resolution,
# first with `deepres predict`, then through the Scipion workflow template in a throw-away project.
demo: $(STAMP)
	$(BIN)/deepres predict $(EXAMPLE)/example_map.mrc --mask $(EXAMPLE)/example_mask.mrc.gz \
		--range wide --out $(DEMO_DIR) --no-progress
	@echo "Outputs in $(DEMO_DIR)/: resolution.mrc, summary.json, histogram.png, slices.png, chimerax.cxc (chimerax $(DEMO_DIR)/chimerax.cxc)"
	$(BIN)/python -m deepres_plugin.workflow $(EXAMPLE)/example_map.mrc $(EXAMPLE)/example_mask.mrc.gz --sampling 1.0

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
