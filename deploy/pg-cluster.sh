# Shell functions for a private PostgreSQL 15 cluster (sourced, not run).
# initdb and postgres refuse to run as root: as root they run as the
# postgres user, which then owns the data directory.
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

pg_as_owner() {
    if (( EUID == 0 )); then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_cluster_init DIR: a new cluster with trust auth for local sockets only.
pg_cluster_init() {
    local dir=$1
    mkdir -p "$dir"
    if (( EUID == 0 )); then chown postgres: "$dir"; fi
    pg_as_owner "$PG_BINDIR/initdb" -D "$dir/data" -U postgres -A trust \
        --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
}

# pg_cluster_start DIR PORT [postgres -c options...]: listens on a unix
# socket in DIR and on 127.0.0.1:PORT.
pg_cluster_start() {
    local dir=$1 port=$2; shift 2
    local opts="-k $dir -p $port -c listen_addresses=127.0.0.1"
    local o
    for o in "$@"; do opts+=" -c $o"; done
    pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "$opts" start >/dev/null
}

pg_cluster_stop() {
    pg_as_owner "$PG_BINDIR/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}
