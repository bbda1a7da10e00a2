#!/bin/bash
# Brings up what the integration tests talk to for real: RabbitMQ on 127.0.0.1:5672 and the real
# OpenStack notifier (Debian's python3-oslo.messaging). Idempotent; run by `make test`.
set -u
amqp_up() { (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! amqp_up; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "test setup: RabbitMQ is not answering on 127.0.0.1:5672; starting it (rabbitmq-server -detached)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do amqp_up && break; sleep 1; done
  fi
  amqp_up || echo "test setup: WARNING: RabbitMQ is not reachable on 127.0.0.1:5672; the OpenStack provider tests will fail (install rabbitmq-server or start it)" >&2
fi
if ! /usr/bin/python3 -c "import oslo_messaging" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test setup: installing python3-oslo.messaging (the real OpenStack notifier) from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-oslo.messaging >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-oslo.messaging >/dev/null 2>&1; } \
      || echo "test setup: WARNING: could not install python3-oslo.messaging; the oslo.messaging test will fail" >&2
  else
    echo "test setup: WARNING: python3-oslo.messaging is missing (sudo apt-get install python3-oslo.messaging); the oslo.messaging test will fail" >&2
  fi
fi
exit 0
