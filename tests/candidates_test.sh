#!/usr/bin/env bash
# candidates (ctest, label cpu): every patch in ci/candidates/ -- a change prepared without a GPU,
# kept as a patch until a GPU measures it (ci/candidates/README.md) -- still applies to this tree
# and says before its diff what it is and how to measure it (a paragraph starting 'Measure'). A
# change to main that breaks a candidate fails here, so the candidate is refreshed or dropped in
# the same commit instead of rotting unseen. A patch applied in the tree (being measured, or
# landed) passes with a reminder.
# usage: candidates_test.sh SOURCE_DIR
set -uo pipefail
cd "$1" || exit 1
n=0
bad=0
for p in ci/candidates/*.patch; do
  [ -e "$p" ] || continue
  n=$((n + 1))
  grep -q '^diff --git ' "$p" || { echo "candidates: $p holds no diff"; bad=1; continue; }
  # The preamble into a variable first: `sed | grep -q` under pipefail fails when grep exits
  # before sed has written everything (SIGPIPE), which made this check flaky.
  pre=$(sed -n '/^diff --git /q;p' "$p")
  grep -q '^Measure' <<<"$pre" ||
    { echo "candidates: $p has no preamble with a 'Measure' paragraph (what it is, how to measure it)"; bad=1; }
  if git apply --check -R "$p" >/dev/null 2>&1; then
    echo "candidates: $p is applied in this tree (delete it in the commit that lands it)"
    continue
  fi
  out=$(git apply --check "$p" 2>&1) || { echo "candidates: $p no longer applies to this tree:"; echo "$out"; bad=1; }
done
[ "$bad" = 0 ] || exit 1
echo "candidates: $n patch(es) apply"
