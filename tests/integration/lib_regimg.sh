# Helpers for the registry client tests; source after lib.sh.

# make_umoci_image DIR TAG [MB]: an OCI layout with one image of random
# content (MB MiB of it, default 1), made by umoci (an independent peer).
make_umoci_image() {
        local dir=$1 tag=$2 mb=${3:-1}
        local b="$WORK/bundle-$RANDOM"
        umoci init --layout "$dir" 2>/dev/null || [ -d "$dir" ] || return 1
        umoci new --image "$dir:$tag" || return 1
        umoci unpack --rootless --image "$dir:$tag" "$b" >/dev/null 2>&1 || return 1
        head -c $((mb * 1048576)) /dev/urandom >"$b/rootfs/data.bin"
        echo "$tag" >"$b/rootfs/tag.txt"
        umoci repack --image "$dir:$tag" "$b" >/dev/null 2>&1 || return 1
        rm -rf "$b"
}

# kiln_stat FILE FIELD: a counter from the "N requests (N retried), N blobs
# uploaded, N mounted, N already there" info line kiln logged into FILE.
kiln_stat() {
        local line
        line=$(grep -E 'requests \(' "$1" | tail -n 1)
        case $2 in
        requests) sed -E 's/.* ([0-9]+) requests.*/\1/' <<<"$line" ;;
        uploaded) sed -E 's/.* ([0-9]+) blobs uploaded.*/\1/' <<<"$line" ;;
        mounted) sed -E 's/.* ([0-9]+) mounted.*/\1/' <<<"$line" ;;
        existing) sed -E 's/.* ([0-9]+) already there.*/\1/' <<<"$line" ;;
        esac
}
