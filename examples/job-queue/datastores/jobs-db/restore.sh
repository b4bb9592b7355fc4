#!/bin/sh
# Written by msgen: restore datastore jobs-db (postgres 16) from a backup
# that backup.sh took, rolled forward to a point in time.
#
# Usage: restore.sh [BACKUP] [--until 'YYYY-MM-DD HH:MM:SS']
#   BACKUP  a folder under <backup dir>/base (default: the newest complete one)
#   --until recover up to this UTC time (default: to the end of the archived WAL)
#
# Run it with the server STOPPED, as root or postgres, where the data directory ($PGDATA)
# is mounted and EMPTY, e.g. in compose:
#   docker compose stop jobs-db   (and empty the jobs-db-data volume)
#   docker compose run --rm --no-deps --entrypoint sh jobs-db /msgen/restore.sh
#   docker compose up -d jobs-db
# It unpacks the base backup and asks the server to recover from the archived WAL at its
# next start; the server then promotes itself and takes writes.
#
# Environment: MSGEN_BACKUP_DIR, MSGEN_DATA_DIR.
set -eu
backup_dir="${MSGEN_BACKUP_DIR:-/backup}"
data_dir="${MSGEN_DATA_DIR:-${PGDATA:-/var/lib/postgresql/data}}"

usage() {
  echo "usage: restore.sh [BACKUP] [--until 'YYYY-MM-DD HH:MM:SS']" >&2
  exit 2
}

die() {
  echo "restore.sh: $*" >&2
  exit 1
}

name="" until=""
while [ $# -gt 0 ]; do
  case "$1" in
    --until) [ $# -ge 2 ] || usage; until="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$name" ] || usage; name="$1"; shift ;;
  esac
done

if [ -z "$name" ]; then
  # backup folders are named by their UTC time: the last complete one is the newest
  for folder in "$backup_dir"/base/*/; do
    [ -f "${folder}complete" ] && name="$(basename "$folder")"
  done
  [ -n "$name" ] || die "no complete backup in $backup_dir/base"
fi
backup="$backup_dir/base/$name"
[ -f "$backup/complete" ] || die "$backup is not a complete backup"
echo "restore.sh: restoring jobs-db from $backup${until:+ up to $until UTC}"

[ -d "$data_dir" ] || mkdir -p "$data_dir"
[ -z "$(ls -A "$data_dir")" ] || die "$data_dir is not empty: move the old data away first"
tar -xzf "$backup/base.tar.gz" -C "$data_dir"
if [ -f "$backup/pg_wal.tar.gz" ]; then
  tar -xzf "$backup/pg_wal.tar.gz" -C "$data_dir/pg_wal"
fi
# A server that was itself restored keeps that recovery's settings in postgresql.auto.conf, and
# its base backups carry them: an old recovery_target_time would stop this recovery short ("recovery
# ended before configured recovery target was reached"). This restore sets its own.
auto_conf="$data_dir/postgresql.auto.conf"
if [ -f "$auto_conf" ]; then
  sed -e '/^[[:space:]]*restore_command[[:space:]]*=/d' -e '/^[[:space:]]*recovery_target[a-z_]*[[:space:]]*=/d' \
    "$auto_conf" > "$auto_conf.msgen"
  mv "$auto_conf.msgen" "$auto_conf"
fi
# recovery settings go where ALTER SYSTEM writes; the server reads them at its next start
{
  echo "restore_command = 'cp $backup_dir/wal/%f %p'"
  [ -z "$until" ] || echo "recovery_target_time = '$until+00'"
  echo "recovery_target_action = 'promote'"
} >> "$data_dir/postgresql.auto.conf"
touch "$data_dir/recovery.signal"
chmod 700 "$data_dir"
if [ "$(id -u)" = 0 ]; then
  chown -R postgres:postgres "$data_dir"
fi
echo "restore.sh: $data_dir holds the backup; start the server to recover"
