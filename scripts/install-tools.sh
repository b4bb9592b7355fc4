#!/usr/bin/env bash
# Installs the Debian packages whose programs prove msgen's output.
# As root it installs what is missing; otherwise it names what to install.
set -euo pipefail
packages=(mariadb-server postgresql redis-server prometheus prometheus-mysqld-exporter
          prometheus-postgres-exporter prometheus-redis-exporter prometheus-alertmanager
          prometheus-node-exporter graphviz)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages (the real-tool tests need them): ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the packages start their services on install where the init system allows it: stop them,
# the tests start their own servers on free ports
for service in mariadb postgresql redis-server prometheus prometheus-node-exporter prometheus-alertmanager \
               prometheus-mysqld-exporter prometheus-postgres-exporter prometheus-redis-exporter; do
  service "$service" stop >/dev/null 2>&1 || true
done
