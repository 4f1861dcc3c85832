#!/usr/bin/env bash
# Counts what one purchase (order + payment, one ticket) costs each service's database on
# PostgreSQL: committed transactions, and rows inserted, updated and deleted. Counts, not
# timings, so a loaded machine gives the same answer (issue 18).
#
# It runs `eventhive bench flash-sale --infra --keep-databases` twice, with Q and 2Q tickets and
# the same buyers, and prints per service (cost(2Q) - cost(Q)) / Q: the migrations, the setup
# (organizer, event, buyers), the buyers' last sold-out attempts and the verification cost both
# runs the same and cancel out. What is left besides the purchases is what background loops
# (outbox relays, the sweeper) did while the longer run lasted: a fraction of a transaction per
# purchase, told apart in the statement listing.
#
# With pg_stat_statements loaded on the server (`--statements`), it also counts the statements
# each service sent per purchase (each one a round trip, on SQLite two thread switches), and
# lists each statement's calls per purchase the same way. Do not reconfigure a shared server for it:
# start a private one, e.g.
#   initdb -D /tmp/pg -U postgres --auth=trust
#   pg_ctl -D /tmp/pg -o "-p 55432 -c shared_preload_libraries=pg_stat_statements" start
#   psql -h 127.0.0.1 -p 55432 -U postgres -c 'CREATE EXTENSION pg_stat_statements'
#   EVENTHIVE_DATABASE_URL=postgres://postgres@127.0.0.1:55432 scripts/count-purchase-work.sh --statements
#
# Usage: scripts/count-purchase-work.sh [--tickets Q] [--buyers C] [--binary PATH] [--statements] [--keep]
# The binary defaults to $CARGO_TARGET_DIR (else target)/debug/eventhive; RabbitMQ and Redis
# are the bench's loopback defaults unless EVENTHIVE_AMQP_URL / EVENTHIVE_REDIS_URL say otherwise.
set -euo pipefail

tickets=200
buyers=16
binary="${CARGO_TARGET_DIR:-target}/debug/eventhive"
statements=false
keep=false
while (($#)); do
  case "$1" in
    --tickets) tickets=$2; shift 2 ;;
    --buyers) buyers=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --statements) statements=true; shift ;;
    --keep) keep=true; shift ;;
    *) echo "count-purchase-work: unknown argument $1" >&2; exit 2 ;;
  esac
done
server="${EVENTHIVE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
services=(ticketing payments notifications analytics)

sql() { # database query
  psql "${server%/}/$1" -X -A -t -q -v ON_ERROR_STOP=1 -c "$2"
}

# Runs the sale with $1 tickets; prints the kept databases' prefix.
sale() {
  local log
  log=$(mktemp)
  if ! EVENTHIVE_DATABASE_URL="$server" "$binary" bench flash-sale --infra --keep-databases \
    --tickets "$1" --buyers "$buyers" >"$log.out" 2>"$log"; then
    cat "$log.out" "$log" >&2
    exit 1
  fi
  grep -o 'kept the databases [a-z0-9_]*_<service>' "$log" | sed 's/kept the databases //; s/_<service>//'
  rm -f "$log" "$log.out"
}

# transactions inserted updated deleted paid-orders, of one service's database.
cost() { # prefix service
  local database="$1_$2"
  # Statistics reach the shared counters when a backend ends; the bench's have just ended.
  local commits
  commits=$(sql postgres "SELECT xact_commit FROM pg_stat_database WHERE datname = '$database'")
  local rows
  rows=$(sql "$database" "SELECT COALESCE(SUM(n_tup_ins), 0) || ' ' || COALESCE(SUM(n_tup_upd), 0) || ' ' \
    || COALESCE(SUM(n_tup_del), 0) FROM pg_stat_user_tables")
  echo "$commits $rows"
}

echo "count-purchase-work: the sale with $tickets and with $((2 * tickets)) tickets, $buyers buyers ($binary)" >&2
small=$(sale "$tickets")
large=$(sale "$((2 * tickets))")
sleep 2
for prefix in "$small" "$large"; do
  paid=$(sql "${prefix}_ticketing" "SELECT COUNT(*) FROM orders WHERE status = 'paid'")
  echo "count-purchase-work: ${prefix}: $paid paid orders" >&2
done

# Statements the service sent (BEGIN and COMMIT included), from pg_stat_statements: the
# foreign-key checks PostgreSQL runs inside a statement (`SELECT 1 FROM ONLY ...`) are left out.
statements_sent() { # service
  if ! $statements; then echo "-"; return; fi
  sql postgres "
    SELECT SUM(CASE WHEN d.datname = '${large}_$1' THEN s.calls ELSE -s.calls END)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname IN ('${small}_$1', '${large}_$1') AND s.query NOT LIKE '%FROM ONLY%'"
}

printf '\n%-14s %12s %10s %10s %10s %10s\n' "per purchase" transactions statements inserts updates deletes
for service in "${services[@]}"; do
  read -r c1 i1 u1 d1 <<<"$(cost "$small" "$service")"
  read -r c2 i2 u2 d2 <<<"$(cost "$large" "$service")"
  awk -v s="$service" -v q="$tickets" -v c="$((c2 - c1))" -v n="$(statements_sent "$service")" \
    -v i="$((i2 - i1))" -v u="$((u2 - u1))" -v d="$((d2 - d1))" \
    'BEGIN { printf "%-14s %12.2f %10s %10.2f %10.2f %10.2f\n", s, c / q, (n == "-" ? n : sprintf("%.2f", n / q)), i / q, u / q, d / q }'
done

if $statements; then
  for service in "${services[@]}"; do
    echo
    echo "== $service: calls per purchase (pg_stat_statements), at least 0.05"
    sql postgres "
      WITH runs AS (
        SELECT s.query, SUM(CASE WHEN d.datname = '${large}_$service' THEN s.calls ELSE -s.calls END) AS calls
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname IN ('${small}_$service', '${large}_$service')
        GROUP BY s.query)
      SELECT to_char(calls::numeric / $tickets, '990.00') || '  ' || left(regexp_replace(query, '\s+', ' ', 'g'), 150)
      FROM runs WHERE calls::numeric / $tickets >= 0.05 ORDER BY calls DESC, query"
  done
fi

if ! $keep; then
  for prefix in "$small" "$large"; do
    for database in $(sql postgres "SELECT datname FROM pg_database WHERE datname LIKE '${prefix}\\_%'"); do
      sql postgres "DROP DATABASE \"$database\" WITH (FORCE)"
    done
  done
fi
