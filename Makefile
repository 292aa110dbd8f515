# BrainViz: `make demo` (install, build the simulated demo brain, precompute, start the app)
#           `make test` (install, run the whole test suite)
PYTHON ?= python
DEMO_DIR ?= data/demo_brain
STORE ?= data/brainviz.duckdb
PORT ?= 8501

.PHONY: install demo demo-brain precompute app test bench clean

install:
	$(PYTHON) -m pip install -q -r requirements.txt

demo: install demo-brain precompute app

demo-brain:
	@if [ -f $(DEMO_DIR)/manifest.json ]; then echo "demo brain exists: $(DEMO_DIR)"; \
	else $(PYTHON) -m precompute demo-brain --out $(DEMO_DIR); fi

precompute:
	$(PYTHON) -m precompute all --dataset $(DEMO_DIR) --store $(STORE)

app:
	BRAINVIZ_STORE=$(STORE) $(PYTHON) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: install
	bash scripts/install_browser.sh
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m bench

clean:
	rm -rf data/cache $(STORE)
