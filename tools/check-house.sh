#!/usr/bin/env bash
# The house rules that a machine can check (docs/DESIGN.md, "Rules of the house"):
# - no source file under base/, runtime/, graph/ or app/ over 600 lines;
# - no file named *_extra*, *_misc* or *_new*;
# - no include cycle between modules (a module is foo.c with foo.h, aps_foo.h or foo_internal.h; module A depends on B
#   when a file of A includes B's header), found with tsort;
# - each floor includes only headers of its own floor and those below it:
#   base <- runtime <- graph <- app (app reaches runtime/ only through graph.h).
# Prints every breach and exits 1 if there is one.
set -u
cd "$(dirname "$0")/.."
fail=0
floors="base runtime graph app"

while read -r n f; do
  [ "$f" = total ] && continue
  if [ "$n" -gt 600 ]; then echo "too long: $f ($n lines, the limit is 600)"; fail=1; fi
done < <(find $floors -name '*.[ch]' -print0 | xargs -0 wc -l)

bad=$(find $floors shaders tests -regex '.*_\(extra\|misc\|new\)[._].*')
if [ -n "$bad" ]; then echo "names that say nothing: $bad"; fail=1; fi

# The floor each header lives on.
declare -A floor_of
for fl in $floors; do
  while read -r h; do floor_of[$(basename "$h")]=$fl; done < <(find "$fl" -name '*.h')
done
rank() { case $1 in base) echo 0 ;; runtime) echo 1 ;; graph) echo 2 ;; app) echo 3 ;; esac; }

pairs=$(mktemp)
for fl in $floors; do
  while read -r f; do
    mod=$(basename "${f%.*}"); mod=${mod#aps_}; mod=${mod%_internal}
    while read -r inc; do
      h=$(basename "$inc")
      to=${floor_of[$h]:-}
      [ -z "$to" ] && continue # a system header or a shader header
      if [ "$(rank "$to")" -gt "$(rank "$fl")" ]; then echo "upward include: $f includes $inc ($to/)"; fail=1; fi
      if [ "$fl" = app ] && [ "$to" = runtime ]; then echo "app/ reaches runtime/: $f includes $inc"; fail=1; fi
      dep=${h%.h}; dep=${dep#aps_}; dep=${dep%_internal}
      [ "$dep" != "$mod" ] && echo "$mod $dep" >> "$pairs"
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
  done < <(find "$fl" -name '*.[ch]')
done
if ! tsort "$pairs" > /dev/null 2> "$pairs.err"; then
  echo "include cycles between modules:"; grep -v 'input contains a loop' "$pairs.err" | sed 's/^tsort: /  /'
  fail=1
fi
rm -f "$pairs" "$pairs.err"
[ $fail = 0 ] && echo "house rules: ok (file sizes, names, include cycles, floors)"
exit $fail
