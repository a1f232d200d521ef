# The two set-up commands of the README. Both work on a fresh machine with Python >= 3.10 and pip.
# torch is pinned at install time through constraints.txt (pyproject.toml keeps lower bounds only).
PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install -c constraints.txt

.PHONY: demo test docs wordnet chromium reproduce

# Install, then train ProtoNet Conv-4 on the embedded Glyphs benchmark and test it on 1,000 fixed episodes
# (validating on 100 of the 500 fixed validation episodes per epoch: configs/trainer/demo.yaml).
demo:
	$(PIP_INSTALL) -e .
	zoo fit --config configs/protonet/glyphs.yaml --config configs/trainer/demo.yaml

# Install everything the tests need (text, BO and report extras, pytest, WordNet, a headless browser), then run the
# suite (slow tests excluded).
test: wordnet chromium
	$(PIP_INSTALL) -e ".[all,dev]"
	$(PYTHON) -m pytest

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors; open it through a local web server,
# e.g. `python -m http.server -d site`, or run `mkdocs serve` while editing.
docs:
	$(PIP_INSTALL) -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

# WordNet 3.0 database files for the text benchmark (Debian/Ubuntu package wordnet-base).
wordnet:
	@test -f /usr/share/wordnet/data.noun || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wordnet-base; }

# Debian's Chromium, which the report test drives headless through Playwright (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# Every benchmark at the budget the README quotes, then the README's tables (hours on 2 CPU cores).
# QUICK=1: each benchmark's smoke version instead (results to *_quick.json; the README is left alone).
reproduce:
	$(PYTHON) benchmarks/reproduce.py $(if $(QUICK),--quick)
