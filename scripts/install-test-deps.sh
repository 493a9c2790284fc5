#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, on Debian 12: the real clients the
# acceptance tests drive (skopeo, podman, buildah, umoci), the Go toolchain the scanner tests build
# real Go binaries with (golang-go), and the reference registry the
# benchmark compares against (docker-registry = CNCF distribution 2.8); then makes sure the
# local PostgreSQL the storage contract tests use is running. Idempotent; needs root.
set -euo pipefail
packages=(skopeo podman buildah umoci docker-registry uidmap golang-go)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The registry package starts a service on :5000 on some systems; the tests start their own.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
echo "test dependencies ready: $(skopeo --version), $(podman --version), $(buildah --version | cut -d' ' -f1-3)"
