# Kumo's entry point: `make server` starts the platform, `make check` is exactly what CI runs.
# Every target installs what it needs first (scripts/setup.sh), Node 24 included.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE := $(CURDIR)/node_modules/.bin/node
NODE_FLAGS := --no-node-snapshot --disable-warning=ExperimentalWarning

.PHONY: setup server check typecheck lint test bench clean

setup:
	@./scripts/setup.sh

server: setup
	./bin/kumo server

check: setup typecheck lint test

typecheck: setup
	$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json --noEmit

lint: setup
	$(NODE) node_modules/eslint/bin/eslint.js --max-warnings=0 .

test: setup
	@./scripts/test-services.sh
	$(NODE) $(NODE_FLAGS) node_modules/vitest/vitest.mjs run

bench: setup
	ONLY=$(ONLY) ./bench/run.sh

clean:
	rm -rf .kumo node_modules
