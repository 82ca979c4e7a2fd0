#!/usr/bin/env bash
# kiln serve under stress of its life: cancel and timeout stop a build
# within 5 s and leave no process behind; kill -9 during a build loses no
# record and a restart tells the truth (the running one failed, the queued
# one runs); SIGTERM stops a running build cleanly after its grace.
#
# A slow build is `kiln append` on a base in a "registry" that accepts
# connections and never answers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_registry ops || exit 1
make_git_repo "$WORK/repo" || exit 1
TARPIT_PORT=$(free_port)
python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); held=[]
while True:
    c,_=s.accept(); held.append(c)' "$TARPIT_PORT" &
T_PIDS+=($!)

start_serve --max-concurrent 1 --shutdown-grace 1s || exit 1
cbs='"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"}'
src='"source":{"type":"Git","git":{"url":"file://'$WORK'/repo"},"contextDir":"app"}'
api POST "$(ns_path ops builds)" '{"metadata":{"name":"slow"},"spec":{'"$src,$cbs"',"paramValues":[{"name":"base","value":"127.0.0.1:'$TARPIT_PORT'/hang/base:1"}],"output":{"image":"'$REG'/ops/slow:1"}}}'
api POST "$(ns_path ops builds)" '{"metadata":{"name":"fast"},"spec":{'"$src,$cbs"',"output":{"image":"'$REG'/ops/fast:1"}}}'

# processes of a run: any whose command line names its work dir
run_procs() { pgrep -f "$SERVE_DATA/runs/$1" | wc -l; }
uid_of() { api GET "$(ns_path ops buildruns "$1")" && j 'd["metadata"]["uid"]'; }

# ---- cancel ----
api POST "$(ns_path ops buildruns)" '{"metadata":{"name":"c1"},"spec":{"build":{"name":"slow"}}}'
check "a slow BuildRun reaches Running" wait_reason ops c1 Running 20
uid=$(uid_of c1)
sleep 0.5
check_eq "its step is running" 1 "$([ "$(run_procs "$uid")" -ge 1 ] && echo 1 || echo 0)"
start=$(date +%s%N)
api PATCH "$(ns_path ops buildruns c1)" '[{"op":"add","path":"/spec/state","value":"BuildRunCanceled"}]' application/json-patch+json
check_eq "cancel by JSON patch (as shp buildrun cancel): 200" 200 "$API_STATUS"
check_eq "the BuildRun ends BuildRunCanceled" BuildRunCanceled "$(wait_done ops c1 10)"
ms=$((($(date +%s%N) - start) / 1000000))
check "... within 5 s (${ms} ms)" test "$ms" -lt 5000
check_eq "no process of the run is left" 0 "$(run_procs "$uid")"
check "its work dir is removed" test ! -e "$SERVE_DATA/runs/$uid"
check "its log says it was canceled" bash -c "grep -q 'BuildRunCanceled' '$SERVE_DATA/logs/$uid.log'"

# ---- timeout ----
api POST "$(ns_path ops buildruns)" '{"metadata":{"name":"t1"},"spec":{"build":{"name":"slow"},"timeout":"2s"}}'
check "the BuildRun with timeout 2s runs" wait_reason ops t1 Running 20
uid=$(uid_of t1)
start=$(date +%s%N)
check_eq "it ends BuildRunTimeout" BuildRunTimeout "$(wait_done ops t1 15)"
ms=$((($(date +%s%N) - start) / 1000000))
check "... within 2 s + 5 s (${ms} ms)" test "$ms" -lt 7000
check_eq "... with Shipwright's message" "BuildRun t1 failed to finish within 2s" \
        "$(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["message"]')"
check_eq "no process of the timed-out run is left" 0 "$(run_procs "$uid")"

# ---- kill -9 during a build, with one queued behind it ----
api POST "$(ns_path ops buildruns)" '{"metadata":{"name":"k1"},"spec":{"build":{"name":"slow"}}}'
check "a BuildRun runs" wait_reason ops k1 Running 20
kuid=$(uid_of k1)
api POST "$(ns_path ops buildruns)" '{"metadata":{"name":"k2"},"spec":{"build":{"name":"fast"}}}'
check_eq "another waits behind it (--max-concurrent 1)" Pending "$(br_reason ops k2)"
sleep 0.3
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
check_eq "after kill -9 the step is orphaned but alive" 1 "$([ "$(run_procs "$kuid")" -ge 1 ] && echo 1 || echo 0)"
start_serve --max-concurrent 1 --shutdown-grace 1s || exit 1
api GET "$(ns_path ops builds)"
check_eq "every Build is still there" "fast slow" "$(j '" ".join(i["metadata"]["name"] for i in d["items"])')"
api GET "$(ns_path ops buildruns)"
check_eq "every BuildRun is still there" "c1 k1 k2 t1" "$(j '" ".join(i["metadata"]["name"] for i in d["items"])')"
check_eq "the one that was running is Failed: DaemonRestarted" "False DaemonRestarted" \
        "$(api GET "$(ns_path ops buildruns k1)"; j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["status"]+" "+[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["reason"]')"
check_eq "... and its leftover processes are gone" 0 "$(run_procs "$kuid")"
check_eq "the queued one runs after the restart and succeeds" Succeeded "$(wait_done ops k2 60)"
check_eq "finished ones keep their outcome" "BuildRunCanceled BuildRunTimeout" "$(br_reason ops c1) $(br_reason ops t1)"

# ---- fairness: a namespace with a backlog does not starve another ----
for ns in fa fb; do
        api POST "$(ns_path $ns builds)" '{"metadata":{"name":"fast"},"spec":{'"$src,$cbs"',"output":{"image":"'$REG'/'$ns'/fast:1"}}}'
        api POST "$(ns_path $ns builds)" '{"metadata":{"name":"slow"},"spec":{'"$src,$cbs"',"paramValues":[{"name":"base","value":"127.0.0.1:'$TARPIT_PORT'/hang/base:1"}],"output":{"image":"'$REG'/'$ns'/slow:1"}}}'
done
api POST "$(ns_path fa buildruns)" '{"metadata":{"name":"hold"},"spec":{"build":{"name":"slow"}}}'
wait_reason fa hold Running 20
for n in fa-1 fa-2 fa-3; do
        api POST "$(ns_path fa buildruns)" '{"metadata":{"name":"'$n'"},"spec":{"build":{"name":"fast"}}}'
done
api POST "$(ns_path fb buildruns)" '{"metadata":{"name":"fb-1"},"spec":{"build":{"name":"fast"}}}'
api PATCH "$(ns_path fa buildruns hold)" '{"spec":{"state":"BuildRunCanceled"}}' application/merge-patch+json
wait_done fa fa-3 60 >/dev/null
wait_done fb fb-1 60 >/dev/null
order=$(grep -oE 'buildrun (fa|fb)/(fa|fb)-[0-9]: Succeeded' "$SERVE_LOG" | sed -E 's/buildrun [a-z]+\/([a-z0-9-]+): .*/\1/' | tr '\n' ' ' | sed 's/ $//')
check "the other namespace's run is not last behind the backlog (order: $order)" \
        test "$(echo "$order" | awk '{print $NF}')" != fb-1

# ---- SIGTERM: a running build gets its grace, then is stopped ----
api POST "$(ns_path ops buildruns)" '{"metadata":{"name":"g1"},"spec":{"build":{"name":"slow"}}}'
check "a BuildRun runs" wait_reason ops g1 Running 20
guid=$(uid_of g1)
start=$(date +%s%N)
stop_serve
ms=$((($(date +%s%N) - start) / 1000000))
check "SIGTERM stops the daemon after the 1s grace (${ms} ms)" test "$ms" -lt 6000
check_eq "no process of the stopped run is left" 0 "$(run_procs "$guid")"
start_serve --max-concurrent 1 || exit 1
check_eq "the stopped BuildRun says why" DaemonShutdown "$(br_reason ops g1)"
stop_serve
check "no sanitizer report in the daemon's log" bash -c "! grep -q Sanitizer '$SERVE_LOG'"
finish
