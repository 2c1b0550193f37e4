# Siteline: `make run` serves the demo, `make test` runs every check. Both install what is
# missing first (see scripts/prereqs.sh) and use a project-local PostgreSQL under .data/
# unless DATABASE_URL is set.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Build output lives outside the checkout so fresh clones reuse earlier builds.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/siteline/target

.PHONY: run test build prereqs db-start db-stop

## run: install prerequisites, build the release site, migrate, seed the demo and serve :3000
run: build
	scripts/with-db.sh scripts/run.sh

## test: fmt, clippy, unit and integration tests, browser journeys
test:
	scripts/prereqs.sh --e2e
	scripts/with-db.sh scripts/test.sh

## build: the release server binary and site, without running anything
build:
	scripts/prereqs.sh --release
	cargo build --release --bin server
	scripts/build-site.sh --release

## prereqs: install what is missing for building, testing and running
prereqs:
	scripts/prereqs.sh --e2e --release

## db-start / db-stop: the project-local PostgreSQL cluster
db-start:
	scripts/local-pg.sh start

db-stop:
	scripts/local-pg.sh stop
