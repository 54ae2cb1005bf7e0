# Baton's entry points. `make run` and `make test` are the two a newcomer needs; both install
# what they need (a virtualenv in .venv, and Debian's dnsmasq for the DNS server the tests run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROTOS := $(wildcard proto/baton/v1/*.proto)

.PHONY: install system-deps run test unit integration e2e fuzz bench lint proto docs check-generated clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# dnsmasq (a real DNS server for the tests) and swaks (the README's example client).
system-deps:
	@if ! command -v dnsmasq >/dev/null 2>&1 && ! test -x /usr/sbin/dnsmasq; then \
		echo "installing dnsmasq-base and swaks (Debian packages)"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dnsmasq-base swaks >/dev/null; \
	fi

## The whole relay on this machine: SMTP on 127.0.0.1:2525, API on 127.0.0.1:8080.
run: install
	$(BIN)/baton run

## Everything CI checks: lint, generated code, unit, integration and end-to-end tests, and a
## bounded fuzzing run of the SMTP command, address and MIME parsers.
test: install system-deps lint check-generated
	$(BIN)/pytest -q -p no:cacheprovider
	$(BIN)/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

FUZZ_SECONDS ?= 20

fuzz: install
	$(BIN)/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

## Baton against a private Postfix on the same workload and machine, in one run; results and a
## chart in bench-results/. BENCH_MESSAGES=2000 for a quick check; see `python -m bench.run -h`.
bench: install system-deps
	$(BIN)/python -m bench.run

unit: install
	$(BIN)/pytest -q tests/unit

integration: install system-deps
	$(BIN)/pytest -q tests/integration

e2e: install system-deps
	$(BIN)/pytest -q tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Regenerate the protobuf code in baton/v1 from proto/.
proto: install
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. $(PROTOS)

## Regenerate docs/metrics.md from the metric declarations.
docs: install
	$(BIN)/python -m baton.dev.metricsdoc

## Fail when baton/v1 is not what proto/ generates, or docs/metrics.md not what the code declares.
check-generated: install
	@$(BIN)/python -m baton.dev.metricsdoc --check
	@tmp=$$(mktemp -d) && \
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=$$tmp --pyi_out=$$tmp $(PROTOS) && \
	for f in $$tmp/baton/v1/*; do \
		cmp -s $$f baton/v1/$$(basename $$f) || { echo "stale generated code: baton/v1/$$(basename $$f); run make proto"; rm -rf $$tmp; exit 1; }; \
	done; \
	for f in baton/v1/*_pb2.py*; do \
		test -e $$tmp/baton/v1/$$(basename $$f) || { echo "generated file without a proto: $$f"; rm -rf $$tmp; exit 1; }; \
	done; \
	rm -rf $$tmp; echo "generated code is current"

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
