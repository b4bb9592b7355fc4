#!/bin/sh
# Written by msgen for datastore payment-db (mysql 8.0): brings its users to what
# msgen plans, and may run any number of times.
# - exporter: the exporter's own login, with only the grants mysqld_exporter documents (PROCESS,
#   REPLICATION CLIENT, SELECT) and at most 3 connections;
#   its password is read from /run/secrets/exporter-password. Whatever else a login of that name held
#   before (privileges on any database, table or column, and the grant option) is revoked.
# The image's entrypoint runs it on an empty data directory, after it created its own users.
# On a data directory from before, run it once inside the datastore's container:
#   docker compose exec payment-db sh /docker-entrypoint-initdb.d/20-users.sh
#   kubectl exec statefulset/payment-db -c mysql -- sh /docker-entrypoint-initdb.d/20-users.sh
set -e
# the root password the entrypoint set; the client reaches the server on its local socket
MYSQL_PWD="$(cat "${MSGEN_ADMIN_PASSWORD_FILE:-/run/secrets/admin-password}")"
export MYSQL_PWD
# the password as an SQL string: backslashes and quotes doubled
exporter_password="$(sed -e 's/\\/\\\\/g' -e "s/'/''/g" "${MSGEN_EXPORTER_PASSWORD_FILE:-/run/secrets/exporter-password}")"
# The image's option files name the socket (/run/mysqld/mysqld.sock), and an option file wins
# over the MYSQL_UNIX_PORT variable: where that is set, it is passed as an option.
mysql --protocol=socket ${MYSQL_UNIX_PORT:+"--socket=$MYSQL_UNIX_PORT"} --user=root <<SQL
CREATE USER IF NOT EXISTS 'exporter'@'%' IDENTIFIED BY '$exporter_password';
ALTER USER 'exporter'@'%' IDENTIFIED BY '$exporter_password' WITH MAX_USER_CONNECTIONS 3;
REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'exporter'@'%';
GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO 'exporter'@'%';
SQL
unset MYSQL_PWD exporter_password
