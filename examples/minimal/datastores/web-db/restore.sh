#!/bin/sh
# Written by msgen: restore datastore web-db (mariadb 10.11) from a backup
# that backup.sh took, rolled forward to a point in time.
#
# Usage: restore.sh [BACKUP] [--until 'YYYY-MM-DD HH:MM:SS']
#   BACKUP  a folder under <backup dir>/base (default: the newest complete one)
#   --until replay the binary log up to this UTC time (default: to its end)
#
# Run it against a running server on an EMPTY data volume (the image's entrypoint has created
# the root and application users from the same secrets), e.g. in compose:
#   docker compose run --rm --no-deps --entrypoint sh web-db-backup /msgen/restore.sh
# It loads the dump, then replays the binary log on the backup location from the position
# the dump noted, for database web only; neither step is written to the
# binary log again.
#
# Environment: MSGEN_BACKUP_DIR, MSGEN_DB_HOST, MSGEN_DB_PORT, MSGEN_DB_PASSWORD_FILE.
set -eu
backup_dir="${MSGEN_BACKUP_DIR:-/backup}"
host="${MSGEN_DB_HOST:-web-db}"
port="${MSGEN_DB_PORT:-3306}"
password_file="${MSGEN_DB_PASSWORD_FILE:-/run/secrets/admin-password}"

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
echo "restore.sh: restoring web-db from $backup${until:+ up to $until UTC}"

MYSQL_PWD="$(cat "$password_file")"
export MYSQL_PWD
sql() {
  # the restore itself stays out of the binary log
  mariadb --host="$host" --port="$port" --protocol=TCP --user=root --init-command="SET SESSION sql_log_bin = 0"
}

gzip -t "$backup/dump.sql.gz" || die "$backup/dump.sql.gz is damaged"
gzip -dc "$backup/dump.sql.gz" | sql
echo "restore.sh: loaded the dump of $name"

# the binary log file and position the dump was taken at (--master-data / --source-data)
position_line="$(gzip -dc "$backup/dump.sql.gz" | sed -n "s/^-- CHANGE [A-Z ]* TO .*_LOG_FILE='\([^']*\)', *[A-Z_]*_LOG_POS=\([0-9]*\).*/\1 \2/p" | head -n 1)"
[ -n "$position_line" ] || die "the dump notes no binary log position"
first="${position_line% *}" start="${position_line#* }"
# the dump's file and every later one, in order (their names count up)
logs="$(find "$backup_dir/binlog" -maxdepth 1 -type f -name 'web-db-bin.[0-9]*' | sort | sed -n "\|/$first\$|,\$p")"
[ -n "$logs" ] || die "binary log $first is not in $backup_dir/binlog"
# shellcheck disable=SC2086 # one path per word: msgen names the files without spaces
TZ=UTC mariadb-binlog --database=web --start-position="$start" ${until:+--stop-datetime="$until"} $logs | sql
echo "restore.sh: replayed the binary log from $first:$start${until:+ up to $until UTC}"
