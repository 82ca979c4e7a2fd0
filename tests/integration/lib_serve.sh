# kiln serve test helpers; source after lib.sh.
#
#   start_serve [ARGS...]    starts `kiln serve` on a free loopback port with
#       SERVE_DATA (default $WORK/serve-data) and a token file; sets
#       SERVE_URL, SERVE_PID, TOKEN, SERVE_LOG.  ARGS go to kiln serve.
#   stop_serve               SIGTERM, then waits for it to exit
#   api METHOD PATH [BODY [CONTENT-TYPE]]
#       one request with the token; the body goes to $RESP, the status to
#       API_STATUS (curl only: nothing but HTTP is used to talk to kiln)
#   noauth_api METHOD PATH [BODY]   the same without a token
#   j EXPR                   evaluates a Python expression over d = the JSON
#       in $RESP and prints it ("" for None)
#   ns_path NS KIND [NAME]   /apis/shipwright.io/v1beta1/namespaces/NS/KIND[/NAME]
#   wait_done NS NAME [SECONDS]   waits until the BuildRun's Succeeded
#       condition is True or False; prints its reason
#   wait_reason NS NAME REASON [SECONDS]   waits for a condition reason
#   make_git_repo DIR        a repository with app/hello.txt and app/bin/;
#       sets GIT_COMMIT
# shellcheck disable=SC2034 # the variables set here are for the caller
RESP="$WORK/.resp"
SHP=/apis/shipwright.io/v1beta1

start_serve() {
        SERVE_PORT=$(free_port)
        SERVE_URL="http://127.0.0.1:$SERVE_PORT"
        SERVE_DATA=${SERVE_DATA:-$WORK/serve-data}
        SERVE_LOG="$WORK/serve.log"
        if [ ! -f "$WORK/token" ]; then
                head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
        fi
        TOKEN=$(cat "$WORK/token")
        "$KILN" serve --listen "127.0.0.1:$SERVE_PORT" --data-dir "$SERVE_DATA" \
                --token-file "$WORK/token" "$@" >>"$SERVE_LOG" 2>&1 &
        SERVE_PID=$!
        T_PIDS+=("$SERVE_PID")
        wait_http "$SERVE_URL/healthz" 10 || {
                tail -n 20 "$SERVE_LOG" >&2
                return 1
        }
}

stop_serve() {
        kill -TERM "$SERVE_PID" 2>/dev/null
        wait "$SERVE_PID" 2>/dev/null
}

api() {
        local m=$1 p=$2 body=${3-} ct=${4:-application/json}
        local -a args=(-s -o "$RESP" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN")
        if [ -n "$body" ]; then
                args+=(-H "Content-Type: $ct" --data-binary "$body")
        fi
        API_STATUS=$(curl "${args[@]}" "$SERVE_URL$p")
        cat "$RESP" >>"$WORK/all-responses"
}

noauth_api() {
        local m=$1 p=$2 body=${3-}
        local -a args=(-s -o "$RESP" -w '%{http_code}' -X "$m")
        [ -n "$body" ] && args+=(-H "Content-Type: application/json" --data-binary "$body")
        API_STATUS=$(curl "${args[@]}" "$SERVE_URL$p")
}

j() {
        python3 -c 'import json,sys
try:
    d=json.load(open(sys.argv[1]))
except Exception:
    d=None
v=eval(sys.argv[2])
print("" if v is None else v)' "$RESP" "$1" 2>/dev/null
}

ns_path() {
        echo "$SHP/namespaces/$1/$2${3:+/$3}"
}

# the Succeeded condition's reason of a BuildRun ("" when none yet)
br_reason() {
        api GET "$(ns_path "$1" buildruns "$2")"
        j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["reason"]'
}

wait_done() {
        local ns=$1 name=$2 n=${3:-60} i st
        for ((i = 0; i < n * 10; i++)); do
                api GET "$(ns_path "$ns" buildruns "$name")"
                st=$(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["status"]')
                if [ "$st" = True ] || [ "$st" = False ]; then
                        j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["reason"]'
                        return 0
                fi
                sleep 0.1
        done
        echo "timeout"
        return 1
}

wait_reason() {
        local ns=$1 name=$2 want=$3 n=${4:-30} i
        for ((i = 0; i < n * 10; i++)); do
                [ "$(br_reason "$ns" "$name")" = "$want" ] && return 0
                sleep 0.1
        done
        return 1
}

make_git_repo() {
        local d=$1
        mkdir -p "$d/app/bin"
        echo "hello from git" >"$d/app/hello.txt"
        cp /bin/busybox "$d/app/bin/busybox"
        (
                cd "$d" && git init -q -b main && git add . &&
                        git -c user.name="Jane Doe" -c user.email=jane@example.com \
                                commit -qm "first"
        ) || return 1
        GIT_COMMIT=$(git -C "$d" rev-parse HEAD)
}
