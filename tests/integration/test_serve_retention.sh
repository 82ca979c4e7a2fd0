#!/usr/bin/env bash
# kiln serve retention: ttlAfterSucceeded / ttlAfterFailed (the BuildRun's
# winning over the Build's) delete finished BuildRuns and their logs,
# succeededLimit / failedLimit keep the newest runs of a Build per result,
# atBuildDeletion takes a Build's runs with it, watchers see DELETED, a
# restarted daemon still applies a TTL, and bad values are a 422.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_serve || exit 1

# A strategy whose one kiln step succeeds (`kiln version`) or, given
# cmd=nope, fails: runs take a moment and need no registry.
api POST "$(ns_path ret buildstrategies)" '{"metadata":{"name":"quick"},"spec":{
 "parameters":[{"name":"cmd","default":"version"}],
 "steps":[{"name":"run","image":"kiln","command":["kiln"],"args":["$(params.cmd)"]}]}}'
check_eq "create the test strategy: 201" 201 "$API_STATUS"

# build NAME RETENTION_JSON
build() {
        api POST "$(ns_path ret builds)" '{"metadata":{"name":"'"$1"'"},"spec":{
 "strategy":{"kind":"BuildStrategy","name":"quick"},"output":{"image":"127.0.0.1:1/x"},
 "retention":'"$2"'}}'
}
# run NAME BUILD [ok|fail] [BUILDRUN_RETENTION_JSON]: creates it, waits for its end
run() {
        local pv='' ret=''
        [ "${3:-ok}" = fail ] && pv=',"paramValues":[{"name":"cmd","value":"nope"}]'
        [ -n "${4:-}" ] && ret=',"retention":'"$4"
        api POST "$(ns_path ret buildruns)" '{"metadata":{"name":"'"$1"'"},"spec":{"build":{"name":"'"$2"'"}'"$pv$ret"'}}'
        wait_done ret "$1" 30
}
exists() {
        api GET "$(ns_path ret buildruns "$1")"
        [ "$API_STATUS" = 200 ]
}
# wait_gone NAME [SECONDS]
wait_gone() {
        local i
        for ((i = 0; i < ${2:-15} * 10; i++)); do
                exists "$1" || return 0
                sleep 0.1
        done
        return 1
}
present() { # the names of the ret BuildRuns, sorted, space-joined
        api GET "$(ns_path ret buildruns)"
        j '" ".join(sorted(i["metadata"]["name"] for i in d["items"]))'
}

# ---- bad values ----
build bad1 '{"ttlAfterFailed":"2x"}'
check_eq "a bad ttlAfterFailed: 422" 422 "$API_STATUS"
check "  naming the field" grep -q 'spec.retention.ttlAfterFailed' "$RESP"
build bad2 '{"failedLimit":0}'
check_eq "failedLimit 0: 422" "422 Invalid" "$API_STATUS $(j 'd["reason"]')"
check "  naming the field" grep -q 'spec.retention.failedLimit' "$RESP"
build bad3 '{"succeededLimit":10001}'
check_eq "succeededLimit 10001: 422" 422 "$API_STATUS"
build bad4 '{"succeededLimit":"5"}'
check_eq "a limit that is a string: 422" 422 "$API_STATUS"
build bad5 '{"atBuildDeletion":"yes"}'
check_eq "atBuildDeletion that is not a boolean: 422" 422 "$API_STATUS"
api POST "$(ns_path ret buildruns)" '{"metadata":{"name":"bad6"},"spec":{"build":{"name":"x"},"retention":{"ttlAfterSucceeded":"soon"}}}'
check_eq "a BuildRun's bad ttlAfterSucceeded: 422" 422 "$API_STATUS"
check "  naming the field" grep -q 'spec.retention.ttlAfterSucceeded' "$RESP"
api GET "$(ns_path ret builds)"
check_eq "nothing was stored by the bad writes" 0 "$(j 'len(d["items"])')"
build ok1 '{"succeededLimit":10000,"failedLimit":1,"ttlAfterFailed":"1h30m","atBuildDeletion":false}'
check_eq "limits 1 and 10000 and a good duration: 201" 201 "$API_STATUS"

# ---- TTLs ----
api GET "$(ns_path ret buildruns)"
rv=$(j 'd["metadata"]["resourceVersion"]')
curl -sN --max-time 60 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path ret buildruns)?watch=true&resourceVersion=$rv" >"$WORK/watch.out" &
watcher=$!

build ttl '{"ttlAfterSucceeded":"2s","ttlAfterFailed":"1h"}'
check_eq "run ttl-ok succeeds" Succeeded "$(run ttl-ok ttl)"
uid=$(j 'd["metadata"]["uid"]')
check "  its log is kept while it lives" test -s "$SERVE_DATA/logs/$uid.log"
check "  right after it ends it is still there" exists ttl-ok
check_eq "run ttl-bad fails" Failed "$(run ttl-bad ttl fail)"
check "ttlAfterSucceeded 2s: the succeeded run is deleted" wait_gone ttl-ok 15
check "  its log file with it" test ! -e "$SERVE_DATA/logs/$uid.log"
api GET "$(ns_path ret buildruns ttl-ok)/log"
check_eq "  and the log endpoint is a 404" 404 "$API_STATUS"
check "the failed run (ttlAfterFailed 1h) stays" exists ttl-bad

build long '{"ttlAfterSucceeded":"1h","ttlAfterFailed":"1s"}'
check_eq "run long-keep succeeds" Succeeded "$(run long-keep long)"
check_eq "run long-short succeeds" Succeeded "$(run long-short long ok '{"ttlAfterSucceeded":"1s"}')"
check_eq "run long-bad fails" Failed "$(run long-bad long fail)"
check "the BuildRun's ttlAfterSucceeded 1s wins over the Build's 1h" wait_gone long-short 15
check "ttlAfterFailed 1s deletes the failed run" wait_gone long-bad 15
check "the run with only the Build's 1h stays" exists long-keep

# An embedded spec carries its own retention.
api POST "$(ns_path ret buildruns)" '{"metadata":{"name":"emb"},"spec":{"build":{"spec":{
 "strategy":{"kind":"BuildStrategy","name":"quick"},"output":{"image":"127.0.0.1:1/x"},
 "retention":{"ttlAfterSucceeded":"1s"}}}}}'
check_eq "an embedded spec's run succeeds" Succeeded "$(wait_done ret emb 30)"
check "  and its ttlAfterSucceeded deletes it" wait_gone emb 15

sleep 1
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
deleted=$(python3 -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(" ".join(sorted(e["object"]["metadata"]["name"] for e in ev if e["type"]=="DELETED")))' "$WORK/watch.out")
check_eq "a watcher saw DELETED for exactly the expired runs" "emb long-bad long-short ttl-ok" "$deleted"

# ---- limits ----
build lim '{"succeededLimit":2,"failedLimit":1}'
for i in 1 2 3 4; do run "lim-ok$i" lim >/dev/null; done
for i in 1 2; do run "lim-bad$i" lim fail >/dev/null; done
for ((i = 0; i < 50; i++)); do
        [ "$(present | tr ' ' '\n' | grep -c '^lim-')" = 3 ] && break
        sleep 0.1
done
check_eq "succeededLimit 2 and failedLimit 1 keep the newest of each" "lim-bad2 lim-ok3 lim-ok4" \
        "$(present | tr ' ' '\n' | grep '^lim-' | tr '\n' ' ' | sed 's/ $//')"
run lim-ok5 lim >/dev/null
for ((i = 0; i < 50; i++)); do exists lim-ok3 || break; sleep 0.1; done
check_eq "one more success pushes out the oldest" "lim-bad2 lim-ok4 lim-ok5" \
        "$(present | tr ' ' '\n' | grep '^lim-' | tr '\n' ' ' | sed 's/ $//')"

# ---- atBuildDeletion ----
build gone '{"atBuildDeletion":true}'
build stay '{"atBuildDeletion":false}'
run gone-1 gone >/dev/null
run gone-2 gone fail >/dev/null
run stay-1 stay >/dev/null
api DELETE "$(ns_path ret builds gone)"
check_eq "delete a Build with atBuildDeletion: 200" 200 "$API_STATUS"
check "  its BuildRuns are gone" test -z "$(present | tr ' ' '\n' | grep '^gone-')"
api DELETE "$(ns_path ret builds stay)"
check "a Build without it leaves its BuildRuns" exists stay-1

# ---- a restart keeps counting from completionTime ----
build rs '{"ttlAfterSucceeded":"3s"}'
check_eq "run rs-1 succeeds" Succeeded "$(run rs-1 rs)"
stop_serve
sleep 4
start_serve || exit 1
check "after a restart past its TTL the run is deleted" wait_gone rs-1 10
check "runs without a TTL survive the restart" exists long-keep

finish
