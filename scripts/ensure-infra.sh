#!/usr/bin/env bash
# Makes sure PostgreSQL, RabbitMQ and Redis answer on loopback (and that HAProxy is installed), starting the ones that do not
# with the commands in DEVELOPERS.md. Used by .ci/run; handy before running the tests locally.
# On Debian/Ubuntu it offers to install the ones that are missing (`--yes` installs without
# asking). Elsewhere: `docker compose -f deploy/test-infra.compose.yaml up -d`.
set -euo pipefail

assume_yes=false
[[ "${1:-}" == "--yes" || "${1:-}" == "-y" ]] && assume_yes=true

# server binary -> Debian package
missing_packages=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing_packages+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || missing_packages+=(rabbitmq-server)
# The load balancer in front of the replicas of `eventhive chaos`.
command -v haproxy >/dev/null 2>&1 || missing_packages+=(haproxy)
if ((${#missing_packages[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-infra: not installed: ${missing_packages[*]}; install them, or run" >&2
    echo "  docker compose -f deploy/test-infra.compose.yaml up -d" >&2
    exit 1
  fi
  if ! $assume_yes; then
    if [[ ! -t 0 ]]; then
      echo "ensure-infra: not installed: ${missing_packages[*]} (rerun with --yes to apt-get install them)" >&2
      exit 1
    fi
    read -r -p "ensure-infra: install ${missing_packages[*]} with apt-get? [y/N] " answer
    [[ "$answer" == [yY]* ]] || exit 1
  fi
  sudo_if_needed=(); [[ $(id -u) -eq 0 ]] || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_if_needed[@]}" apt-get install -y -qq "${missing_packages[@]}"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name port seconds
  local name=$1 port=$2 seconds=$3
  for _ in $(seq "$seconds"); do
    if port_open "$port"; then return 0; fi
    sleep 1
  done
  echo "ensure-infra: $name did not come up on port $port" >&2
  return 1
}

if ! port_open 5432; then
  echo "ensure-infra: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for PostgreSQL 5432 30
fi

if ! port_open 6379; then
  echo "ensure-infra: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis 6379 15
fi

if ! port_open 5672; then
  echo "ensure-infra: starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ 5672 90
fi

# PostgreSQL accepts TCP a moment before it accepts logins; RabbitMQ likewise.
for _ in $(seq 30); do
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || ! command -v pg_isready >/dev/null; then break; fi
  sleep 1
done
echo "ensure-infra: PostgreSQL, Redis and RabbitMQ are up"
