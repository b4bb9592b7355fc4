#!/bin/sh
# Written by msgen for datastore jobs-db (postgres 16): brings its users to what
# msgen plans, and may run any number of times.
# - exporter: the exporter's own login, with only the pg_monitor role postgres_exporter documents and at most 3 connections;
#   its password is read from /run/secrets/exporter-password. Whatever else a login of that name held
#   before (other roles, privileges on databases) is revoked.
# - api: statements stop after 30000 ms (30s: api, its owner, has no timeout).
# The image's entrypoint runs it on an empty data directory, after it created its own users.
# On a data directory from before, run it once inside the datastore's container:
#   docker compose exec jobs-db sh /docker-entrypoint-initdb.d/20-users.sh
#   kubectl exec statefulset/jobs-db -c postgres -- sh /docker-entrypoint-initdb.d/20-users.sh
set -e
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set=exporter_password="$(cat "${MSGEN_EXPORTER_PASSWORD_FILE:-/run/secrets/exporter-password}")" \
  --set=app_user=api --set=statement_timeout=30000 <<'SQL'
SELECT 'CREATE ROLE exporter' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'exporter')
\gexec
ALTER ROLE exporter WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  CONNECTION LIMIT 3 PASSWORD :'exporter_password';
GRANT pg_monitor TO exporter;
-- a role from before may hold more: other roles' rights and privileges on databases go
SELECT format('REVOKE %I FROM exporter', r.rolname)
  FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
  WHERE m.member = 'exporter'::regrole AND r.rolname <> 'pg_monitor'
\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM exporter', d.datname)
  FROM pg_database d
  WHERE EXISTS (SELECT FROM aclexplode(d.datacl) a WHERE a.grantee = 'exporter'::regrole)
\gexec
ALTER ROLE :"app_user" SET statement_timeout = :statement_timeout;
SQL
