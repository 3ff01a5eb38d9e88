# TalentSphere Deploy: every entry point in one place. Run as root on Debian 12/13.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
INVENTORY ?= inventories/lab
TOPOLOGY  ?= single
RELEASE   ?= bookworm
REPORT    ?= reports/verify
# Debian packages the control node needs: venv for the tooling, nspawn/debootstrap/nftables for the lab,
# ssh for pyinfra/testinfra, openssl for the lab CA, PostgreSQL and Redis for the app tests, pgBackRest for the
# backup role's drill test (a real restore into a scratch cluster).
# nginx-light, openssh-server and sudo give the unit tests the real validators the deploy runs on the hosts
# (nginx -t, a real sshd on 127.0.0.1 for the host key checks, visudo); prometheus (promtool) and the exporters
# test the alert rules against what the exporters really export; amtool checks the Alertmanager configuration;
# rsyslog (rsyslogd -N1 and a real forward) tests the common role's syslog forwarding; pebble (a local ACME
# server, no service) issues and renews the lab lb's certificate in the nginx role's ACME test.
# Their services are not left running.
SYSTEM_PACKAGES := python3-venv python3-dev build-essential systemd-container debootstrap nftables iproute2 \
                   openssh-client openssl postgresql redis-server pgbackrest curl nginx-light openssh-server sudo \
                   prometheus prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter \
                   prometheus-blackbox-exporter prometheus-alertmanager rsyslog rsyslog-gnutls pebble pgbouncer
# package:service pairs of the test-only packages above, stopped and disabled when `system-deps` installed them.
TEST_SERVICES := nginx-light:nginx openssh-server:ssh prometheus:prometheus \
                 prometheus-node-exporter:prometheus-node-exporter prometheus-postgres-exporter:prometheus-postgres-exporter \
                 prometheus-redis-exporter:prometheus-redis-exporter prometheus-blackbox-exporter:prometheus-blackbox-exporter \
                 prometheus-alertmanager:prometheus-alertmanager rsyslog:rsyslog pgbouncer:pgbouncer

.PHONY: help system-deps venv lock up down deploy verify test test-unit test-app test-e2e bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

system-deps: ## Install the Debian packages the control node needs (idempotent)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> installing Debian packages: $$missing" >&2; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null && \
	  if [ -d /run/systemd/system ]; then \
	    for pair in $(TEST_SERVICES); do \
	      case " $$(echo $$missing) " in *" $${pair%%:*} "*) systemctl disable --now "$${pair#*:}.service" >/dev/null 2>&1;; esac; \
	    done; \
	    true; \
	  fi; \
	fi

# Hash-checking mode: pip installs nothing that is not in the lock with a matching sha256, dependencies included.
$(BIN)/.installed: requirements/control.lock pyproject.toml app/pyproject.toml | system-deps
	@echo ">> building the control virtualenv in $(VENV)" >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/control.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . -e app
	touch $@

venv: system-deps $(BIN)/.installed ## Build the control virtualenv (hash-locked)

# Universal resolution: one lock serves every Python a host or the control node runs (markers select).
LOCK := $(BIN)/uv pip compile --quiet --universal --generate-hashes --python-version 3.11 --custom-compile-command "make lock"
lock: venv ## Resolve the pinned requirements files into the hash-locked ones (after editing a pin)
	$(LOCK) app/requirements.txt -o app/requirements.lock
	$(LOCK) requirements/control.txt requirements/test.txt requirements/bench.txt app/requirements.txt -o requirements/control.lock

up: venv ## Build the lab, deploy the whole stack, verify, print the API URL
	$(BIN)/tsdeploy lab up --topology $(TOPOLOGY) --release $(RELEASE)
	$(BIN)/tsdeploy deploy $(INVENTORY)
	$(BIN)/tsdeploy verify $(INVENTORY) --report $(REPORT)
	$(BIN)/tsdeploy smoke $(INVENTORY)

down: venv ## Remove the lab and every trace of it
	$(BIN)/tsdeploy lab down

deploy: venv ## Deploy INVENTORY (validates it first)
	$(BIN)/tsdeploy deploy $(INVENTORY)

verify: venv ## Verify INVENTORY's hosts read-only and write reports to REPORT
	$(BIN)/tsdeploy verify $(INVENTORY) --report $(REPORT)

# Unit and app tests run two at a time (each starts its own PostgreSQL and Redis on free ports) while the lab's
# base images are built (mostly download and unpack); then the e2e tests, one at a time, as they share one lab
# per topology. Every part runs even if an earlier one fails.
test: venv ## Run every test: unit, app (real PostgreSQL/Redis), e2e (real lab hosts); lists the 30 slowest
	@mkdir -p reports; status=0; \
	$(BIN)/tsdeploy lab images > reports/lab-images.log 2>&1 & images=$$!; \
	$(BIN)/pytest -n 2 tests/unit tests/app --durations=15 || status=$$?; \
	wait $$images || { echo "building the lab's base images failed:"; cat reports/lab-images.log; status=1; }; \
	$(BIN)/pytest tests/e2e --durations=30 || status=$$?; \
	exit $$status

test-unit: venv
	$(BIN)/pytest tests/unit

test-app: venv
	$(BIN)/pytest tests/app

test-e2e: venv
	$(BIN)/pytest tests/e2e

bench: venv ## Benchmarks on an own split lab (QUICK=1: tiny data, short runs); writes bench/results/ and BENCHMARKS.md
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
	cd bench && ../$(BIN)/python run.py $(if $(QUICK),--quick)

clean: ## Remove the virtualenv and reports
	rm -rf $(VENV) reports
