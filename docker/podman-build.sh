#!/usr/bin/env bash
# Build and test the ezphot image on this kind of machine. Every host-specific workaround lives
# here, not in docker/Dockerfile (which stays a standard Dockerfile for Docker + a registry).
#
#   docker/podman-build.sh build [TARGET] [TAG]   # TARGET runtime (default) or test
#   docker/podman-build.sh run ARGS...            # `<engine> run` with the flags this host needs
#   docker/podman-build.sh test                   # what `make docker-test` does (see cmd_test)
#
# Engine: docker when a Docker daemon answers (`docker info`), else podman. With docker nothing
# below applies: the base image is pulled from the registry as usual.
# With podman (facts measured on these Debian 12 machines, root, no registry, no Docker engine):
#  - podman, runc and debootstrap are apt-get installed when missing (apt-get update first);
#  - --runtime runc: crun fails on this host's hybrid cgroups ("cgroups in hybrid mode not
#    supported");
#  - --ulimit nofile/nproc: the sandbox lacks CAP_SYS_RESOURCE, the default ulimits are refused;
#  - no registry: the base image is made by debootstrap (minbase) from the Debian mirror apt
#    already uses (URIs: in /etc/apt/sources.list.d/debian.sources), trimmed like
#    bookworm-slim, imported as localhost/bookworm-base:<YYYYMMDD> and passed as --build-arg
#    BASE. The tarball is cached in $EZPHOT_DOCKER_CACHE (default /var/cache/ezphot-docker/)
#    keyed by the UTC date, so warm runs skip debootstrap; older tarballs are removed;
#  - pip inside the build must trust the host's CA bundle (TLS-inspecting proxy): the bundle is
#    mounted at a side path (/run/host-ca.crt) with a pip.conf naming it. Mounting it over
#    /etc/ssl/certs/ca-certificates.crt breaks the ca-certificates postinst (EBUSY).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
CACHE=${EZPHOT_DOCKER_CACHE:-/var/cache/ezphot-docker}
DAY=$(date -u +%Y%m%d)
BASE_IMAGE=localhost/bookworm-base:$DAY
HOST_CA=${EZPHOT_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
ULIMITS=(--ulimit nofile=1024:20000 --ulimit nproc=4096:4096)

if timeout 20 docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  ENGINE=podman
fi

need_tools() {  # podman + runc + debootstrap, installed from the apt mirror when missing
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_base() {  # localhost/bookworm-base:<today>, from the cached tarball or a new debootstrap
  podman image exists "$BASE_IMAGE" && return 0
  local tarball=$CACHE/bookworm-base-$DAY.tar
  if [ ! -s "$tarball" ]; then
    local sources=/etc/apt/sources.list.d/debian.sources
    local mirror
    mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$CACHE"
    local root
    root=$(mktemp -d "$CACHE/root.XXXXXX")
    echo "debootstrap bookworm from $mirror (about 2 min)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    # Same apt sources as the host (bookworm-updates, security); trim like bookworm-slim.
    if [ -f "$sources" ]; then
      rm -f "$root/etc/apt/sources.list"
      cp "$sources" "$root/etc/apt/sources.list.d/"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
           "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    find "$CACHE" -maxdepth 1 -name 'bookworm-base-*.tar' ! -name "bookworm-base-$DAY.tar" -delete
  fi
  podman import --quiet "$tarball" "$BASE_IMAGE" >/dev/null
  echo "base image $BASE_IMAGE imported from $tarball"
}

cmd_build() {
  local target=${1:-runtime} tag=${2:-ezphot}
  if [ "$ENGINE" = docker ]; then
    docker build -f "$repo/docker/Dockerfile" --target "$target" -t "$tag" "$repo"
    return
  fi
  need_tools
  ensure_base
  local conf
  conf=$(mktemp -d)
  printf '[global]\ncert = /run/host-ca.crt\n' >"$conf/pip.conf"
  podman build --runtime runc "${ULIMITS[@]}" --layers \
    --build-arg "BASE=$BASE_IMAGE" \
    -v "$HOST_CA:/run/host-ca.crt:ro" -v "$conf/pip.conf:/etc/pip.conf:ro" \
    -f "$repo/docker/Dockerfile" --target "$target" -t "$tag" "$repo"
  rm -rf "$conf"
}

engine_run() {
  if [ "$ENGINE" = docker ]; then
    docker run "$@"
  else
    podman run --runtime runc "${ULIMITS[@]}" "$@"
  fi
}

image_size() { "$ENGINE" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

cmd_test() {
  # 1. build runtime + test stages; 2. the whole test suite inside the test image, ../shared
  # mounted read-only where tests/conftest.py expects it; 3. the demo as the non-root user with
  # a mounted output folder; 4. a Dask scheduler + `dask worker` from the image (host network,
  # data tree at the same path as on the client) and `ezphot photometry --scheduler` through it.
  local t0 t1 t2 t3 t4 shared port rc=0
  # globals, not locals: the EXIT trap runs after this function has returned
  work="" sched=ezphot-sched-$$ worker=ezphot-worker-$$
  shared=$(cd "$repo/../shared" && pwd -P)
  t0=$(date +%s)
  cmd_build runtime ezphot
  cmd_build test ezphot:test
  t1=$(date +%s)
  echo "== test suite inside the container"
  # pytest must not be PID 1 (a test reads /proc/<getppid()>/stat; a container's PID 1 has
  # parent 0): bash stays the parent because a command follows pytest.
  engine_run --rm -v "$shared:/opt/ezphot/shared:ro" --entrypoint bash ezphot:test \
    -c 'python -m pytest -q -p no:cacheprovider; exit $?'
  t2=$(date +%s)

  work=$(mktemp -d /tmp/ezphot-docker-test.XXXXXX)
  chown 1000:1000 "$work" 2>/dev/null || chmod 1777 "$work"
  cleanup() {
    "$ENGINE" rm -f "$sched" "$worker" >/dev/null 2>&1 || true
    [ -z "$work" ] || rm -rf "$work"
  }
  trap cleanup EXIT
  echo "== demo as the non-root user, output in a mounted folder"
  [ "$(engine_run --rm --entrypoint id ezphot -u)" != 0 ] || { echo "image runs as root" >&2; exit 1; }
  engine_run --rm -v "$work:/out" ezphot demo --output /out/demo --n-frames 2 --workers 1
  ls "$work"/demo/scidata/*/*/*/*.cat >/dev/null 2>&1 \
    || find "$work/demo" -name '*.cat' | grep -q . \
    || { echo "demo wrote no catalogue" >&2; exit 1; }
  [ "$(stat -c %u "$work/demo")" = 1000 ] || { echo "demo output not owned by uid 1000" >&2; exit 1; }
  t3=$(date +%s)

  echo "== Dask worker from the image"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  engine_run -d --name "$sched" --network host --entrypoint dask ezphot \
    scheduler --host 127.0.0.1 --port "$port" --no-dashboard >/dev/null
  engine_run -d --name "$worker" --network host -v "$work:$work" --entrypoint dask ezphot \
    worker "tcp://127.0.0.1:$port" --nworkers 2 --nthreads 1 --no-dashboard >/dev/null
  sleep 8
  # The client: the image's ezphot, the tree at the same path as in the worker.
  engine_run --rm --network host -v "$work:$work" ezphot \
    photometry "$work/demo/scidata" --scheduler "tcp://127.0.0.1:$port" --no-resume || rc=$?
  "$ENGINE" logs "$worker" 2>&1 | tail -5
  [ $rc = 0 ] || { echo "batch through the Dask worker failed ($rc)" >&2; exit 1; }
  t4=$(date +%s)

  echo "== docker-test summary ($ENGINE)"
  echo "image ezphot (runtime): $(image_size ezphot)"
  echo "image ezphot:test:      $(image_size ezphot:test)"
  echo "build: $((t1 - t0)) s; test suite: $((t2 - t1)) s; demo: $((t3 - t2)) s;" \
       "dask worker batch: $((t4 - t3)) s; total: $((t4 - t0)) s"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  run) shift; engine_run "$@" ;;
  test) cmd_test ;;
  engine) echo "$ENGINE" ;;
  *) echo "usage: $0 build [TARGET] [TAG] | run ARGS... | test | engine" >&2; exit 2 ;;
esac
