#!/usr/bin/env bash
# Start rebuy on a fresh Debian 12 machine, in the foreground:
#   installs what is missing, builds, starts a private PostgreSQL cluster
#   under .data/ (unless REBUY_DATABASE_URL is given), migrates, creates a
#   demo shop, prints an admin API key and a curl example, and serves on
#   127.0.0.1:8080.  Ctrl-C stops rebuyd and the cluster.
#
# Environment: REBUY_DATABASE_URL (use this database instead),
#   REBUY_LISTEN (default 127.0.0.1:8080), REBUY_PG_PORT (private cluster
#   port, default 5433), REBUY_DATA_DIR (default <project>/.data), and every
#   REBUY_* setting of rebuyd (see README).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source deploy/pg-cluster.sh

deploy/install-deps.sh
[[ -d build ]] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
REBUYD=$ROOT/build/src/rebuyd

DATA=${REBUY_DATA_DIR:-$ROOT/.data}
started_pg=0
stop_pg() { (( started_pg )) && pg_cluster_stop "$DATA/pg"; started_pg=0; }
trap stop_pg EXIT

if [[ -z ${REBUY_DATABASE_URL:-} ]]; then
    PGPORT=${REBUY_PG_PORT:-5433}
    mkdir -p "$DATA"
    if (( EUID == 0 )) && ! runuser -u postgres -- test -x "$DATA"; then
        echo "the postgres user cannot reach $DATA; set REBUY_DATA_DIR to a" \
             "directory it can (e.g. /var/tmp/rebuy)" >&2
        exit 1
    fi
    [[ -f $DATA/pg/data/PG_VERSION ]] || pg_cluster_init "$DATA/pg"
    # sockets off: the project path may be too long for a socket name
    pg_cluster_start "$DATA/pg" "$PGPORT" "unix_socket_directories=''"
    started_pg=1
    export REBUY_DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=rebuy"
    psql "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'rebuy'" | grep -q 1 \
        || psql "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" -qc \
        "CREATE DATABASE rebuy" >/dev/null
fi

"$REBUYD" migrate

# one demo shop per database; a fresh admin key on every start
shop_file=$DATA/demo-shop-id
mkdir -p "$DATA"
if [[ -s $shop_file ]] && ADMIN_KEY=$("$REBUYD" keys create --shop "$(cat "$shop_file")" \
        --scope admin --name quickstart 2>/dev/null); then
    SHOP_ID=$(cat "$shop_file")
else
    out=$("$REBUYD" shops create --name "Demo Tea House" --currency CNY \
        --timezone Asia/Shanghai)
    SHOP_ID=$(sed -E 's/.*"shop_id":"([^"]+)".*/\1/' <<<"$out")
    ADMIN_KEY=$(sed -E 's/.*"admin_key":"([^"]+)".*/\1/' <<<"$out")
    echo "$SHOP_ID" >"$shop_file"
fi

LISTEN=${REBUY_LISTEN:-127.0.0.1:8080}
cat <<BANNER

  rebuy is starting on http://$LISTEN
  demo shop:  $SHOP_ID (Demo Tea House, CNY, Asia/Shanghai)
  admin key:  $ADMIN_KEY
              (shown once; stored only as a hash)

  try:
    curl -s -X PUT http://$LISTEN/v1/customers/cust-1001 \\
      -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \\
      -d '{"name":"Li Wei","email":"li.wei@example.com","consent":{"email":{"granted":true}}}'
    curl -s http://$LISTEN/v1/customers/cust-1001 -H "Authorization: Bearer $ADMIN_KEY"

  Ctrl-C stops rebuyd and the database.

BANNER
"$REBUYD" serve --listen "$LISTEN" || true
