#!/bin/bash
# Incremental captures of a process tree (README "Incremental images", Trees): a parent and 2
# workers (test/native/tree-programs/workers.c) with MIB MiB heaps each; per round 1% of each
# heap is written, then a full, a compare-based incremental and a tracked incremental capture
# run one after the other (alternated rounds). Prints image bytes, freeze, wall and CPU times.
# Usage: bench/tree-incremental.sh [MIB=256] [ROUNDS=3]   (run `npm run build` first)
set -e
REPO=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:-256}; ROUNDS=${2:-3}
C=$REPO/build/ckimg-capture
W=$(mktemp -d /tmp/ckimg-bench-tree.XXXXXX)
trap 'kill $P $SL 2>/dev/null; wait $S 2>/dev/null; rm -rf "$W"' EXIT
gcc -O2 -o "$W/workers" "$REPO/test/native/tree-programs/workers.c"
gcc -O2 -o "$W/subreaper" "$REPO/test/native/restore-programs/subreaper.c"
cd "$W"
mkfifo ctl
sleep 100000 > ctl & SL=$!
./subreaper ./workers "$MIB" < ctl > out 2>&1 & S=$!
for i in $(seq 100); do grep -q ready out 2>/dev/null && break; sleep 0.2; done
P=$(tr -d " \n" < /proc/$S/task/$S/children)
PAGES=$((MIB * 256)); N=$((PAGES / 100))
touch1() { for w in 0 1 2; do echo "write $w $(shuf -i 0-$((PAGES - 1)) -n $N | tr '\n' ' ')" > ctl; done; sleep 0.5; }
pick() { grep -o '"image_bytes":[0-9]*\|"freeze_ms":[0-9.]*\|"total_ms":[0-9.]*\|"stored_pages":[0-9]*\|"tracking":"[a-z]*"\|cpu [0-9.+]* s' | tr '\n' ' '; }
"$C" "$P" -o base.img 2>/dev/null | pick; echo " full (base of the compared chain)"
"$C" "$P" -o tbase.img --track 2>/dev/null | pick; echo " full --track (base of the tracked chain)"
prev=base.img; tprev=tbase.img
for r in $(seq "$ROUNDS"); do
	touch1
	echo "round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
	/usr/bin/time -f "cpu %U+%S s" "$C" "$P" -o "full$r.img" 2>&1 | pick; echo " full"
	/usr/bin/time -f "cpu %U+%S s" "$C" "$P" -o "inc$r.img" --parent "$prev" --no-track 2>&1 | pick; echo " incremental (compared)"
	/usr/bin/time -f "cpu %U+%S s" "$C" "$P" -o "tinc$r.img" --parent "$tprev" --track 2>&1 | pick; echo " incremental (tracked)"
	rm -f "full$r.img"
	prev=inc$r.img; tprev=tinc$r.img
done
