# Registry test helpers; source after lib.sh.
#
# Registries (each call starts a new one, in $WORK/registry-NAME, made
# unique by a -2, -3... suffix; sets REG (127.0.0.1:port), REG_PORT,
# REG_DIR (config.yml, data/, log); keep REG in your own variable before
# starting the next):
#   start_plain_registry [NAME]              plain HTTP
#   start_tls_registry [NAME]                HTTPS with a test CA; also sets
#       CA_FILE (PEM), CERT_DIR (a directory holding ca.crt, for
#       skopeo --dest-cert-dir / --src-cert-dir), TLS_CERT and TLS_KEY
#       (the server's, for 127.0.0.1 and localhost: regproxy --tls-cert
#       and --tls-key can use them too), TLS_DIR
#   start_htpasswd_registry USER PASS [NAME] Basic auth from a bcrypt
#       htpasswd file; also sets REG_USER, REG_PASS, HTPASSWD_FILE
# Proxy (tests/helpers/regproxy.py, whose docstring documents its options,
# statistics and fault spec):
#   start_proxy UPSTREAM [regproxy args...]  UPSTREAM is host:port or a URL;
#       sets PROXY (127.0.0.1:port), PROXY_PORT, PROXY_URL, PROXY_STATS
#       (stats file), PROXY_LOG (stderr), PROXY_PID, PROXY_DIR
#   proxy_stats                 prints the stats JSON of $PROXY
#   proxy_stat KEY              prints one top-level stats value
#   proxy_count METHOD [PATH_REGEX [STATUS]]
#                               prints how many requests match (METHOD may
#                               be "*"; PATH_REGEX is searched in the path)
#   proxy_reset                 zeroes the stats
#   proxy_set_faults SPEC       replaces the fault rules (JSON or compact)
#   proxy_expire_tokens         expires every bearer token issued so far
# Inputs:
#   write_users_file FILE USER:PASS[:ACTIONS]...
#   fails CMD...  http_status [CURL ARGS] URL  http_header NAME [CURL ARGS] URL
#   write_docker_config DIR HOST USER PASS   adds HOST to DIR/config.json;
#       sets DOCKER_CONFIG_FILE
#   make_test_image DIR SIZE_MB LAYERS [SEED]   OCI layout tagged latest;
#       sets IMG_MANIFEST_DIGEST, IMG_MANIFEST_SIZE, IMG_CONFIG_DIGEST,
#       IMG_LAYER_DIGESTS, IMG_LAYER_BYTES, IMG_BLOB_BYTES
# shellcheck disable=SC2034 # the variables set here are for the caller
HELPERS_DIR="$TESTS_DIR/helpers"
REGPROXY="$HELPERS_DIR/regproxy.py"
T_PROXIES=0

# reg_name BASE: BASE, or BASE-2, BASE-3... if a registry by that name exists.
reg_name() {
        local n=$1 i=2
        while [ -e "$WORK/registry-$n" ]; do n="$1-$i" && i=$((i + 1)); done
        echo "$n"
}

start_plain_registry() {
        local name
        name=$(reg_name "${1:-plain}")
        start_registry "$name" || return 1
        REG_DIR="$WORK/registry-$name"
}

# make_test_ca: a CA and a server certificate for 127.0.0.1 and localhost,
# made once per test in $WORK/tls.
make_test_ca() {
        TLS_DIR="$WORK/tls"
        CA_FILE="$TLS_DIR/ca.crt"
        CERT_DIR="$TLS_DIR/certs.d"
        TLS_CERT="$TLS_DIR/server.crt"
        TLS_KEY="$TLS_DIR/server.key"
        [ -f "$TLS_CERT" ] && return 0
        mkdir -p "$CERT_DIR"
        (
                cd "$TLS_DIR" || exit 1
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                        -keyout ca.key -out ca.crt -days 2 -subj "/CN=kiln test CA" \
                        -addext "basicConstraints=critical,CA:TRUE" \
                        -addext "keyUsage=critical,keyCertSign,cRLSign" &&
                        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                                -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
                        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
                                "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
                                "keyUsage=critical,digitalSignature" >server.ext &&
                        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
                                -CAcreateserial -days 2 -extfile server.ext -out server.crt
        ) >"$TLS_DIR/openssl.log" 2>&1 || {
                cat "$TLS_DIR/openssl.log" >&2
                return 1
        }
        cp "$CA_FILE" "$CERT_DIR/ca.crt"
}

start_tls_registry() {
        local name
        name=$(reg_name "${1:-tls}")
        make_test_ca || return 1
        start_registry "$name" \
                "  tls:" \
                "    certificate: $TLS_CERT" \
                "    key: $TLS_KEY" || return 1
        REG_DIR="$WORK/registry-$name"
        wait_https "https://$REG/v2/" || return 1
}

# wait_https URL: waits until URL answers over TLS verified by $CA_FILE.
wait_https() {
        local i
        for ((i = 0; i < 100; i++)); do
                curl -s --cacert "$CA_FILE" -o /dev/null "$1" && return 0
                sleep 0.1
        done
        echo "timed out waiting for $1" >&2
        return 1
}

start_htpasswd_registry() {
        local user=$1 pass=$2 name
        name=$(reg_name "${3:-htpasswd}")
        HTPASSWD_FILE="$WORK/$name.htpasswd"
        htpasswd -Bbn "$user" "$pass" >"$HTPASSWD_FILE" || return 1
        start_registry "$name" \
                "auth:" \
                "  htpasswd:" \
                "    realm: kiln-test" \
                "    path: $HTPASSWD_FILE" || return 1
        REG_DIR="$WORK/registry-$name"
        REG_USER=$user
        REG_PASS=$pass
}

start_proxy() {
        local upstream=$1
        shift
        case "$upstream" in
        http://* | https://*) ;;
        *) upstream="http://$upstream" ;;
        esac
        T_PROXIES=$((T_PROXIES + 1))
        PROXY_DIR="$WORK/proxy-$T_PROXIES"
        mkdir -p "$PROXY_DIR"
        PROXY_STATS="$PROXY_DIR/stats.json"
        PROXY_LOG="$PROXY_DIR/log"
        python3 "$REGPROXY" --upstream "$upstream" --port 0 \
                --port-file "$PROXY_DIR/port" --stats "$PROXY_STATS" "$@" \
                >"$PROXY_DIR/out" 2>"$PROXY_LOG" &
        PROXY_PID=$!
        T_PIDS+=("$PROXY_PID")
        local i
        for ((i = 0; i < 100; i++)); do
                [ -s "$PROXY_DIR/port" ] && break
                kill -0 "$PROXY_PID" 2>/dev/null || break
                sleep 0.05
        done
        if [ ! -s "$PROXY_DIR/port" ]; then
                echo "regproxy did not start:" >&2
                cat "$PROXY_LOG" >&2
                return 1
        fi
        PROXY_PORT=$(cat "$PROXY_DIR/port")
        PROXY="127.0.0.1:$PROXY_PORT"
        local a scheme=http
        for a in "$@"; do [ "$a" == "--tls-cert" ] && scheme=https; done
        PROXY_URL="$scheme://$PROXY"
        wait_http "$PROXY_URL/_proxy/stats" 5
}

# proxy_ctl METHOD PATH [DATA]: a control request to $PROXY; prints the body.
proxy_ctl() {
        local -a data=()
        [ $# -ge 3 ] && data=(--data-binary "$3")
        curl -ksSf -X "$1" "${data[@]}" "$PROXY_URL$2"
}

proxy_stats() { proxy_ctl GET /_proxy/stats; }
proxy_reset() { proxy_ctl POST /_proxy/reset >/dev/null; }
proxy_set_faults() { proxy_ctl POST /_proxy/faults "$1" >/dev/null; }
proxy_expire_tokens() { proxy_ctl POST /_proxy/expire-tokens >/dev/null; }

proxy_stat() {
        proxy_stats | python3 -c 'import json,sys
v=json.load(sys.stdin)[sys.argv[1]]
print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1"
}

proxy_count() {
        proxy_stats | python3 -c 'import json,re,sys
m,p,s=(sys.argv[1:]+["",""])[:3]
print(sum(1 for r in json.load(sys.stdin)["requests"]
          if (m in ("*",r["method"])) and re.search(p,r["path"])
          and (s=="" or str(r["status"])==s)))' "$@"
}

write_users_file() {
        local file=$1
        shift
        printf '%s\n' "$@" >"$file"
}

write_docker_config() {
        local dir=$1 host=$2 user=$3 pass=$4
        mkdir -p "$dir"
        DOCKER_CONFIG_FILE="$dir/config.json"
        python3 - "$DOCKER_CONFIG_FILE" "$host" "$user" "$pass" <<'EOF'
import base64, json, os, sys
path, host, user, pw = sys.argv[1:]
cfg = {}
if os.path.exists(path):
    with open(path) as f:
        cfg = json.load(f)
cfg.setdefault("auths", {})[host] = {
    "auth": base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
EOF
}

make_test_image() {
        local out
        out=$(python3 "$HELPERS_DIR/mkimage.py" "$1" "$2" "$3" "${4:-}") || return 1
        eval "$out"
}

# fails COMMAND...: succeeds when COMMAND fails (for check); its output goes
# to $WORK/.fails.out, for a look when a check does not pass.
fails() {
        ! "$@" >"$WORK/.fails.out" 2>&1
}

# http_status [curl args...] URL: prints the HTTP status code (000 when
# there was no answer).
http_status() {
        curl -ks -o /dev/null -w '%{http_code}' "$@"
}

# http_header NAME [curl args...] URL: prints the value of header NAME.
http_header() {
        local name=$1
        shift
        curl -ks -o /dev/null -D - "$@" | tr -d '\r' |
                sed -n "s/^$name: //Ip" | head -n 1
}
