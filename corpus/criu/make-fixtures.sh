#!/usr/bin/env bash
# Regenerates corpus/criu/: needs root, a built ckimg (npm run build) and CRIU v4.2
# (CRIU=path, default /work/tools/criu/criu/criu). CI does not run this; it reads the result.
#
#   quiet.c, quiet     the program (gcc -O1 -g -pthread): 3 threads blocked, a pipe, a unix
#                      socketpair, a listening TCP socket on 127.0.0.1
#   quiet.ckimg        `ckimg capture` of it ...
#   quiet.criu/        ... and `criu dump --leave-running` of the same, unchanged process state
#   quiet-podman.tar.gz  quiet.criu/ as checkpoint/ of a Podman-layout archive (docs/CRIU.md),
#                      with a hand-written config.dump and spec.dump (not made by Podman)
set -euo pipefail
cd "$(dirname "$0")"
CRIU=${CRIU:-/work/tools/criu/criu/criu}
REPO=$(cd ../.. && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -O1 -g -pthread -o quiet quiet.c
rm -rf quiet.criu quiet.ckimg
mkdir quiet.criu
# The program runs from a fixed path that the tests recreate (test/criu/fixture.ts), so that
# its symbols resolve from disk on any machine, CI included.
RUNDIR=/tmp/ckimg-criu-fixture
rm -rf "$RUNDIR" && mkdir -p "$RUNDIR" && cp quiet "$RUNDIR/quiet"
# setsid: the process leads its own session, as CRIU wants without --shell-job.
(cd "$RUNDIR" && exec setsid env -i PATH=/usr/bin:/bin HOME=/nonexistent LANG=C ./quiet >out 2>err </dev/null) &
for _ in $(seq 50); do [ -s "$RUNDIR/out" ] && break; sleep 0.1; done
pid=$(awk '{print $2}' "$RUNDIR/out")
"$REPO/bin/ckimg" capture "$pid" -o quiet.ckimg --compress lz4
"$CRIU" dump -t "$pid" -D quiet.criu -o "$tmp/dump.log" --leave-running
kill -9 "$pid"
wait || true
rm -f quiet.criu/stats-dump.log
# Podman layout: checkpoint/ + config.dump + spec.dump + stats-dump + rootfs-diff.tar + network.status
mkdir -p "$tmp/arc/checkpoint"
cp quiet.criu/* "$tmp/arc/checkpoint/"
cp quiet.criu/stats-dump "$tmp/arc/stats-dump"
cat >"$tmp/arc/config.dump" <<'JSON'
{"id":"0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff","name":"quiet-fixture","rootfsImageName":"localhost/ckimg/quiet:latest","runtime":"crun","createdTime":"2026-12-01T09:30:00.000000000Z"}
JSON
cat >"$tmp/arc/spec.dump" <<'JSON'
{"ociVersion":"1.0.2","process":{"args":["/quiet"],"cwd":"/"},"annotations":{"io.container.manager":"libpod","org.opencontainers.image.stopSignal":"15"}}
JSON
echo '[]' >"$tmp/arc/network.status"
mkdir -p "$tmp/rootfs/etc" && echo "changed by the container" >"$tmp/rootfs/etc/motd"
tar -C "$tmp/rootfs" -cf "$tmp/arc/rootfs-diff.tar" etc
tar -C "$tmp/arc" --owner=0 --group=0 --sort=name -cf - . | gzip -9n >quiet-podman.tar.gz
echo "fixtures regenerated (pid $pid)"
