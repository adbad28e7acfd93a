#!/bin/sh
# MySQL benchmark: sysbench direct, through haproxy and through wardgate (bracketed runs),
# plus new authenticated connections per second. Options: see scripts/bench_mysql_run.py.
#   scripts/bench_mysql.sh                 # full matrix, about 10 minutes
#   scripts/bench_mysql.sh --quick         # point_select, text protocol, 4 threads
#   WARDGATE_DURABILITY=power-loss scripts/bench_mysql.sh --quick
set -eu
here=$(dirname "$0")
python=${PYTHON:-$here/../.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" "$here/bench_mysql_run.py" "$@"
