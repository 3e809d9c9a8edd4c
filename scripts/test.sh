#!/usr/bin/env bash
# The whole check, as README.md states it: lint, types, and the test suite on every
# transport. Starts (and if needed installs) a local RabbitMQ with the AMQP 1.0
# plugin when none answers on 127.0.0.1:5672. On CI (CI=true) a broker that cannot
# be started is a failure; elsewhere the broker tests fail too, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-rabbitmq.sh || [ "${CI:-}" != "true" ]  # off CI, go on: broker tests then skip
bash scripts/ensure-redis.sh || [ "${CI:-}" != "true" ]

echo "== ruff"
ruff check .
echo "== mypy --strict"
bash scripts/typecheck.sh
echo "== pytest"
python -m pytest -p no:cacheprovider "$@"
