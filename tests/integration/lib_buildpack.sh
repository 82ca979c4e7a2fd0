# shellcheck shell=bash
# Helpers to drive one buildpack by hand, the way kiln's lifecycle does,
# and to run what it built. Source after lib.sh, with BP (the buildpack
# directory) and BP_ID set.
#
# Build roots: new_root NAME makes $WORK/NAME with app/ (the source),
# layers/ and platform/env/. bin/detect and bin/build run under bubblewrap
# with only /usr, the app at /workspace, the layers at /layers, the
# platform at /platform (read-only), the buildpack (read-only) and a
# private /tmp, and no network. serve runs the default process of
# launch.toml the same way, with the launch layers' environment.

# bwrap_usable: whether bubblewrap can make namespaces here.
bwrap_usable() {
	bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
		--unshare-all /bin/true 2>/dev/null
}

# The host's /usr, with the merged-/usr links, for bwrap.
USR_ARGS=(--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64
	--symlink usr/sbin /sbin)

# bp PHASE ROOT: runs bin/PHASE (detect or build) for the build root ROOT.
# BP_BWRAP holds extra bubblewrap arguments (to hide a tool, say).
BP_BWRAP=()
bp() {
	local phase=$1 root=$2
	mkdir -p "$root/layers/$BP_ID"
	local -a args
	if [ "$phase" = detect ]; then
		args=(/platform /layers/detect-plan.toml)
	else
		args=("/layers/$BP_ID" /platform /layers/plan.toml)
	fi
	bwrap "${USR_ARGS[@]}" \
		--ro-bind "$BP" "/cnb/buildpacks/$BP_ID/0.1.0" \
		--bind "$root/app" /workspace --bind "$root/layers" /layers --ro-bind "$root/platform" /platform \
		--proc /proc --dev /dev --tmpfs /tmp --unshare-all --die-with-parent --clearenv \
		--setenv PATH /usr/local/bin:/usr/bin:/bin --setenv HOME /tmp --setenv LANG C.UTF-8 \
		--setenv CNB_APP_DIR /workspace --setenv CNB_PLATFORM_DIR /platform \
		--setenv CNB_LAYERS_DIR "/layers/$BP_ID" --setenv CNB_BP_PLAN_PATH /layers/plan.toml \
		--setenv CNB_BUILD_PLAN_PATH /layers/detect-plan.toml \
		--setenv CNB_BUILDPACK_DIR "/cnb/buildpacks/$BP_ID/0.1.0" --chdir /workspace "${BP_BWRAP[@]}" \
		"/cnb/buildpacks/$BP_ID/0.1.0/bin/$phase" "${args[@]}"
}

# new_root NAME [PLAN_ENTRY]: an empty build root; prints its path.
new_root() {
	local r=$WORK/$1
	mkdir -p "$r/app" "$r/layers/$BP_ID" "$r/platform/env"
	printf '[[entries]]\nname = "%s"\n' "${2:-function}" >"$r/layers/plan.toml"
	echo "$r"
}

# setenv ROOT NAME VALUE: a platform env var (a file, as the platform writes it).
setenv() { printf '%s' "$3" >"$1/platform/env/$2"; }

# restore_cache FROM TO: what kiln does with cache=true layers before a
# build: the contents and [metadata] of FROM's cache layers, not [types].
restore_cache() {
	local from=$1/layers/$BP_ID to=$2/layers/$BP_ID t l
	mkdir -p "$to"
	for t in "$from"/*.toml; do
		[ -f "$t" ] || continue
		l=$(basename "$t" .toml)
		case $l in launch | build | store) continue ;; esac
		grep -qx 'cache = true' "$t" || continue
		sed -n '/^\[metadata\]/,$p' "$t" >"$to/$l.toml"
		[ -d "$from/$l" ] && cp -a "$from/$l" "$to/"
	done
	return 0
}

# build_ok WHAT ROOT LOG: runs bin/build, which must succeed; shows its
# output when it does not.
build_ok() {
	if bp build "$2" >"$3" 2>&1; then
		pass "$1"
	else
		fail "$1 (exit $?):"
		sed 's/^/    /' "$3"
	fi
}

# layer_diff_id ROOT LAYER: the diff_id kiln gives the launch layer LAYER
# (at /layers/<id>/LAYER in the image).
layer_diff_id() {
	local out
	out=$("$KILN" layer create "$1/layers/$BP_ID/$2:/layers/$BP_ID/$2" --output "$WORK/.layer.tar.gz") || return 1
	rm -f "$WORK/.layer.tar.gz"
	echo "${out#* }" | cut -d' ' -f1
}

# launch_env ROOT: the environment of the image's processes, one NAME=VALUE
# a line: PATH, then each launch layer's env/ and env.launch/ files, as the
# exporter applies them (override, default, prepend and append with delim).
launch_env() {
	python3 - "$1/layers/$BP_ID" <<'EOF'
import os, sys
layers = sys.argv[1]
env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
for toml in sorted(os.listdir(layers)):
    name = toml[:-5]
    if not toml.endswith(".toml") or name in ("launch", "build", "store"):
        continue
    if "launch = true" not in open(os.path.join(layers, toml)).read().splitlines():
        continue
    for sub in ("env", "env.launch"):
        d = os.path.join(layers, name, sub)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            var, _, op = f.partition(".")
            if op == "delim" or not os.path.isfile(os.path.join(d, f)):
                continue
            val = open(os.path.join(d, f)).read()
            delim = ""
            if os.path.exists(os.path.join(d, var + ".delim")):
                delim = open(os.path.join(d, var + ".delim")).read()
            cur = env.get(var, "")
            if op in ("", "override"):
                env[var] = val
            elif op == "default":
                env[var] = cur or val
            elif op == "prepend":
                env[var] = val + delim + cur if cur else val
            elif op == "append":
                env[var] = cur + delim + val if cur else val
for k, v in env.items():
    print(f"{k}={v}")
EOF
}

# launch_command ROOT: the default process's command, one word a line.
launch_command() {
	python3 - "$1/layers/$BP_ID/launch.toml" <<'EOF'
import sys, tomllib
procs = tomllib.load(open(sys.argv[1], "rb"))["processes"]
p = next((p for p in procs if p.get("default")), procs[0])
for a in p["command"] + p.get("args", []):
    print(a)
EOF
}

# serve ROOT NAME [NAME=VALUE...]: runs ROOT's default process under
# bubblewrap with the host's /usr (for the runtime), the layers at /layers
# and the app at /workspace (both read-only), the launch environment plus
# the given settings, and PORT set to a free port; sets PORT_<NAME>,
# OUT_<NAME> (stdout and stderr) and PID_<NAME>, and waits until it answers
# (fails when it exits first or does not answer within 20 s).
serve() {
	local root=$1 name=$2 port out
	shift 2
	port=$(free_port)
	out=$WORK/$name.out
	local -a envargs=() argv=() e
	while IFS= read -r e; do envargs+=(--setenv "${e%%=*}" "${e#*=}"); done < <(launch_env "$root")
	for e in "$@"; do envargs+=(--setenv "${e%%=*}" "${e#*=}"); done
	mapfile -t argv < <(launch_command "$root")
	bwrap "${USR_ARGS[@]}" --ro-bind "$root/layers" /layers --ro-bind "$root/app" /workspace \
		--proc /proc --dev /dev --tmpfs /tmp --unshare-all --share-net --die-with-parent --clearenv \
		"${envargs[@]}" --setenv PORT "$port" --chdir /workspace "${argv[@]}" >"$out" 2>&1 &
	local pid=$!
	T_PIDS+=("$pid")
	printf -v "PORT_$name" '%s' "$port"
	printf -v "OUT_$name" '%s' "$out"
	printf -v "PID_$name" '%s' "$pid"
	local i
	for ((i = 0; i < 200; i++)); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wait_log FILE PATTERN: waits up to 5 s for a line matching PATTERN (grep -E).
wait_log() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qE "$2" "$1" && return 0
		sleep 0.1
	done
	return 1
}

# http_code ARGS...: curl ARGS, printing only the status code.
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
