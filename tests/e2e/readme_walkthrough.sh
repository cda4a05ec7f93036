#!/usr/bin/env bash
# Runs the README's walk-through (between the walkthrough markers) in a scratch network and
# mount namespace, as a new user would paste it, and checks what it printed.
set -euo pipefail
readme=$1
build_dir=$2
script=$(sed -n '/<!-- walkthrough:begin -->/,/<!-- walkthrough:end -->/p' "$readme" | sed '/^```/d; /^<!--/d')
[ -n "$script" ] || { echo "no walkthrough block in $readme"; exit 1; }
# A pid namespace too: whatever the walk-through leaves running dies with it.
out=$(cd "$build_dir/.." && unshare --net --mount --pid --fork --mount-proc bash -euo pipefail -c "
  export PATH=$build_dir/bin:\$PATH
  $script" 2>&1) || { echo "$out"; echo "walkthrough failed"; exit 1; }
echo "$out"
# What the walk-through promises: three 200s, an explanation, generation 1 drained and
# empty after the promote, the reuseport group steered and answering from generation 2, a
# refusal counted.
[ "$(grep -c '^200$' <<<"$out")" -eq 3 ] || { echo "expected three HTTP 200 lines"; exit 1; }
grep -Eq 'draining +[0-9]+/[0-9]+ \(empty\)' <<<"$out" || { echo "generation 1 was not shown draining and empty"; exit 1; }
grep -q 'steered' <<<"$out" || { echo "explain did not say steered"; exit 1; }
grep -q '^v2$' <<<"$out" || { echo "the reuseport group's generation 2 did not answer"; exit 1; }
grep -Eq 'api +tcp +127.0.0.1:7000 +steer \(program [0-9]+\)' <<<"$out" || { echo "the reuseport group was not shown as steer's"; exit 1; }
grep -q '^refused$' <<<"$out" || { echo "the connection after kill was not refused"; exit 1; }
grep -Eq '"no_socket": [1-9]' <<<"$out" || { echo "the refusal was not counted"; exit 1; }
grep -q '^generation 2 pid [0-9]*$' <<<"$out" || { echo "steerd's graceful restart did not reach generation 2"; exit 1; }
grep -Eq '^steer_selections_total\{label="shop",protocol="tcp",family="ipv4"\} [1-9]' <<<"$out" || { echo "steerd's metrics did not count shop's connections"; exit 1; }
echo "walkthrough ok"
