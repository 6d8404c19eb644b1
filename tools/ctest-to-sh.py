#!/usr/bin/env python3
"""Turns `ctest --show-only=json-v1` into a plain bash script that runs the same tests
with the same environment, working directories and pass conditions, for a machine that
has the build folder but no CMake (a GPU machine without a toolchain). Paths under the source root
become relative to it, so the script runs from the repository root there.

usage: ctest --test-dir BUILD --show-only=json-v1 | tools/ctest-to-sh.py SRC_ROOT > tests.sh
The script prints one line per test and a summary; it exits 1 if any test failed."""
import json, shlex, sys

root = sys.argv[1].rstrip('/') + '/'
def rel(s):
    # a path (or VAR=path) under the source root: relative to $top, the root there
    i = s.find(root)
    return shlex.quote(s) if i < 0 else shlex.quote(s[:i]) + '"$top"/' + shlex.quote(s[i + len(root):])
tests = json.load(sys.stdin)['tests']
out = ['#!/usr/bin/env bash', '# run from the repository root', 'top=$PWD; pass=0; fail=0; failed=""']
for t in tests:
    props = {p['name']: p['value'] for p in t.get('properties', [])}
    env = ' '.join(rel(e) for e in props.get('ENVIRONMENT', []))
    cmd = ' '.join(rel(c) for c in t['command'])
    wd = rel(props.get('WORKING_DIRECTORY', root))
    limit = int(props.get('TIMEOUT', 1500))
    regex = props.get('PASS_REGULAR_EXPRESSION')
    check = ('grep -Eq %s "$log"' % shlex.quote(regex[0])) if regex else '[ $rc -eq 0 ]'
    name = t['name']
    out.append('log=$(mktemp); t0=$(date +%%s%%N); (cd %s && env %s timeout %d %s) >"$log" 2>&1; rc=$?; '
               't=$(( ($(date +%%s%%N) - t0) / 1000000 ))' % (wd, env, limit, cmd))
    out.append('if %s; then pass=$((pass+1)); echo "PASS %s ${t} ms"; else fail=$((fail+1)); failed="$failed %s"; '
               'echo "FAIL %s (rc $rc)"; tail -20 "$log"; fi; rm -f "$log"' % (check, name, name, name))
out.append('echo "$pass passed, $fail failed:$failed"; [ $fail -eq 0 ]')
print('\n'.join(out))
