#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages, the virtualenv with the project
# installed, the npm packages of the interop tests, and (with --services) MariaDB and PostgreSQL.
# Every step checks first and does nothing when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
want_services=0
for arg in "$@"; do
  case "$arg" in
    --services) want_services=1 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
debs=(openssh-server openssh-client sshpass sysbench haproxy asciinema tmux mariadb-client nodejs npm)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # nodejs/npm may come from another source on this image: only ask apt when the command is absent.
  filtered=()
  for p in "${missing[@]}"; do
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 || filtered+=("$p") ;;
      npm) command -v npm >/dev/null 2>&1 || filtered+=("$p") ;;
      mariadb-client) command -v mysql >/dev/null 2>&1 || filtered+=("$p") ;;
      *) filtered+=("$p") ;;
    esac
  done
  if [ ${#filtered[@]} -gt 0 ]; then
    log "installing Debian packages: ${filtered[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
  fi
fi

# --- Python virtualenv -----------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f .venv/.setup-stamp ] || [ "$(cat .venv/.setup-stamp)" != "$stamp" ] \
   || ! .venv/bin/python -c 'import gateway, events, tui' 2>/dev/null; then
  log "installing wardgate and its test dependencies into .venv"
  .venv/bin/pip install -q -e '.[test,postgres]'
  echo "$stamp" > .venv/.setup-stamp
fi

# --- npm packages (the real OpenID provider used by the interop tests) ------------------------
if [ -f scripts/oidc/package.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d scripts/oidc/node_modules/oidc-provider ]; then
    log "installing npm packages in scripts/oidc"
    (cd scripts/oidc && npm install --silent --no-audit --no-fund >/dev/null 2>&1) || log "npm install failed"
  fi
fi

# --- services ---------------------------------------------------------------------------------
if [ "$want_services" -eq 1 ]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
    log "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 \
      || (command -v mysqld_safe >/dev/null && (mysqld_safe >/dev/null 2>&1 &)) || true
  fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    log "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
    fi
  fi
  for _ in $(seq 1 60); do
    if (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
fi
log "ready ($root)"
