#!/bin/sh
# Written by msgen: restore datastore queue (redis 7.2) from a backup
# that backup.sh took.
#
# Usage: restore.sh [BACKUP]
#   BACKUP  a folder under <backup dir>/base (default: the newest complete one)
#
# Run it with the server STOPPED, where the data directory is mounted, e.g. in compose:
#   docker compose stop queue
#   docker compose run --rm --no-deps --entrypoint sh queue /msgen/restore.sh
#   docker compose up -d queue
# It replaces the data directory's snapshot and append-only files with the backup's snapshot# (written as the base of the append-only file, which is what the server loads).
#
# Environment: MSGEN_BACKUP_DIR, MSGEN_DATA_DIR.
set -eu
backup_dir="${MSGEN_BACKUP_DIR:-/backup}"
data_dir="${MSGEN_DATA_DIR:-/data}"

usage() {
  echo "usage: restore.sh [BACKUP]" >&2
  exit 2
}

die() {
  echo "restore.sh: $*" >&2
  exit 1
}

name="" until=""
while [ $# -gt 0 ]; do
  case "$1" in
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
echo "restore.sh: restoring queue from $backup${until:+ up to $until UTC}"

[ -d "$data_dir" ] || die "$data_dir is not a directory"
gzip -t "$backup/dump.rdb.gz" || die "$backup/dump.rdb.gz is damaged"
# the old append-only files would be loaded instead of the snapshot
rm -rf "$data_dir/appendonlydir" "$data_dir/appendonly.aof"
gzip -dc "$backup/dump.rdb.gz" > "$data_dir/dump.rdb"
# With appendonly yes, Redis 7 loads only its append-only files: finding none, it starts EMPTY
# and never reads dump.rdb. So the snapshot becomes the base of a new append-only file (a base
# may be an RDB file), named as the server names it (appenddirname and appendfilename keep
# their defaults), with the manifest that lists it.
mkdir "$data_dir/appendonlydir"
cp "$data_dir/dump.rdb" "$data_dir/appendonlydir/appendonly.aof.1.base.rdb"
echo "file appendonly.aof.1.base.rdb seq 1 type b" > "$data_dir/appendonlydir/appendonly.aof.manifest"
if [ "$(id -u)" = 0 ]; then
  chown -R redis:redis "$data_dir/dump.rdb" "$data_dir/appendonlydir"
fi
echo "restore.sh: $data_dir holds the backup; start the server"
