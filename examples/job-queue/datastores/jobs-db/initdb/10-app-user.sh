#!/bin/sh
# Written by msgen: the postgres image creates only its superuser; this creates the
# application role api and its database api (the wiring contract),
# with the password read from the secret file, never from the environment or this file.
# The image's entrypoint runs it once, on an empty data directory, as the postgres user.
set -e
msgen_password_file="${MSGEN_DB_PASSWORD_FILE:-/run/secrets/db-password}"
msgen_password="$(cat "$msgen_password_file")"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set=app_user=api --set=app_db=api --set=app_password="$msgen_password" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
\connect :"app_db"
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
unset msgen_password msgen_password_file
