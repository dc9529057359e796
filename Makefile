# The two commands of the README. Both install what is missing (uv, the locked
# dependencies) and need nothing but Python ≥ 3.11, make and a C compiler.
UV := $(shell sh .ci/bootstrap-uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system

.PHONY: demo test install lint schema bench

install:
	$(UV) sync --frozen --all-extras

demo: install
	$(UV) run wuye demo $(ARGS)

test: install
	$(UV) run pytest $(ARGS)

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

schema: install
	$(UV) run wuye export-schema

# `make bench` runs bench/units_query.py; `make bench BENCH=bill_generation` the bill-generation
# benchmark, `make bench BENCH=iot_latency` MQTT → websocket latency and ingest throughput.
# ARGS go to the one chosen (each has --help), e.g. ARGS="--duration 5 --telemetry 5000".
BENCH ?= units_query

bench: install
	$(UV) run python -m bench.$(BENCH) $(ARGS)
