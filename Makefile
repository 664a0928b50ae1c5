# Thin aliases: every target calls a script in scripts/, exactly as CI does.
.PHONY: help install test test-unit test-contract test-integration test-faults lint format demo demo-down bench images ova test-ova testbed-up testbed-stop sample

help:
	@echo "make demo         run the appliance on a local demo cloud (installs what is missing)"
	@echo "make demo-down    stop the demo"
	@echo "make test         install what is missing, then run every test tier"
	@echo "make lint         ruff (lint + format check) and mypy"
	@echo "make bench        benchmarks, printed as tables"
	@echo "make images       build the container images"
	@echo "make ova          build the OVA appliance"

install:
	scripts/dev/install

test: install
	scripts/dev/test

test-unit: install
	scripts/dev/test unit

test-contract: install
	scripts/dev/test contract

test-integration: install
	scripts/dev/test integration

test-faults: install
	scripts/dev/test faults

lint: install
	scripts/dev/lint

format: install
	scripts/dev/format

sample: install
	scripts/dev/sample

testbed-up:
	scripts/dev/testbed up

testbed-stop:
	scripts/dev/testbed stop

demo: install
	scripts/dev/demo up

demo-down:
	scripts/dev/demo down

bench: install
	scripts/dev/bench

images: install
	scripts/dev/images

ova: install
	scripts/dev/ova

test-ova: install
	scripts/dev/ova test
