#!/bin/sh
# Written by msgen: backups of datastore jobs-db (postgres 16) with
# pg_basebackup (a base backup over the replication protocol, the WAL it needs included).
#
# Usage: backup.sh now       take one backup into <backup dir>/base/<UTC time>/, then remove
#                            backups older than 7d (never the newest)
#        backup.sh schedule  msgen's scheduler: the postgres image has no cron, so this loop
#                            wakes each minute (UTC) and runs `now` when the minute matches
#                            '0 3 * * *'
#        backup.sh health    exit 0 while the scheduler runs and its last backup did not fail
#        backup.sh due MINUTE HOUR DAY MONTH WEEKDAY
#                            exit 0 when the schedule runs at that minute (weekday 0 = Sunday)
#
# Environment (defaults are what compose and Kubernetes mount): MSGEN_DB_HOST, MSGEN_DB_PORT,
# MSGEN_DB_PASSWORD_FILE (the superuser's password), MSGEN_BACKUP_DIR.
set -eu
host="${MSGEN_DB_HOST:-jobs-db}"
port="${MSGEN_DB_PORT:-5432}"
password_file="${MSGEN_DB_PASSWORD_FILE:-/run/secrets/admin-password}"
backup_dir="${MSGEN_BACKUP_DIR:-/backup}"
state_dir="${MSGEN_STATE_DIR:-/tmp}"
retention_minutes=10080
# archived WAL is kept one backup interval longer than the backups it rolls forward
log_retention_minutes=11520

fail() {
  echo "backup.sh: $*" >&2
  return 1
}

dump() {
  # $1: the new backup's folder
  PGPASSWORD="$(cat "$password_file")" pg_basebackup --host="$host" --port="$port" --username=postgres \
    --no-password --pgdata="$1" --format=tar --gzip --wal-method=fetch --checkpoint=fast || return 1
}

now() {
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  target="$backup_dir/base/$stamp"
  mkdir -p "$target" || return 1
  if ! dump "$target"; then
    rm -rf "$target"
    fail "backup $stamp of jobs-db failed"
    return 1
  fi
  # restore.sh takes only folders marked complete
  touch "$target/complete"
  echo "backup.sh: $target"
  prune "$stamp"
}

prune() {
  # $1: the newest backup, always kept
  find "$backup_dir/base" -mindepth 1 -maxdepth 1 -type d ! -name "$1" -mmin +"$retention_minutes" -exec rm -rf {} +
  find "$backup_dir/wal" -mindepth 1 -maxdepth 1 -type f -mmin +"$log_retention_minutes" -delete
}

listed() {
  # $1: a comma-separated list, $2: a number
  case ",$1," in *",$2,"*) return 0 ;; esac
  return 1
}

due() {
  # the numbers date prints, leading zeros dropped
  minute="${1#0}" hour="${2#0}" day="${3#0}" month="${4#0}" weekday="$5"
  listed "0" "${minute:-0}" || return 1
  listed "3" "${hour:-0}" || return 1
  listed "1,2,3,4,5,6,7,8,9,10,11,12" "$month" || return 1
  listed "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31" "$day" && listed "0,1,2,3,4,5,6" "$weekday"
}

schedule() {
  echo "backup.sh: backing up jobs-db at '0 3 * * *' (UTC) into $backup_dir/base"
  # the shell is the container's first process, which ignores signals it has no handler for:
  # stop at once between backups (a backup under way finishes first)
  trap 'exit 0' TERM INT
  while :; do
    touch "$state_dir/backup-heartbeat"
    # shellcheck disable=SC2046 # five numbers, split on purpose
    if due $(date -u '+%M %H %d %m %w'); then
      if now; then rm -f "$state_dir/backup-failed"; else touch "$state_dir/backup-failed"; fi
    fi
    seconds="$(date -u +%S)"
    # in the background, so that the trap runs as soon as a signal arrives
    sleep $((60 - ${seconds#0})) &
    wait $!
  done
}

health() {
  [ -f "$state_dir/backup-heartbeat" ] || fail "the scheduler has not started"
  [ -z "$(find "$state_dir/backup-heartbeat" -mmin +2)" ] || fail "the scheduler stopped"
  [ ! -f "$state_dir/backup-failed" ] || fail "the last backup failed"
}

case "${1:-}" in
  now) now ;;
  schedule) schedule ;;
  health) health ;;
  due) shift; due "$@" ;;
  *) echo "usage: backup.sh now|schedule|health|due MINUTE HOUR DAY MONTH WEEKDAY" >&2; exit 2 ;;
esac
