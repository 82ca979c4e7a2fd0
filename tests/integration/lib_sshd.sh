# A real OpenSSH server on a free loopback port serving git over ssh.
#   start_sshd           sets SSHD_PORT, SSH_USER, SSH_KEY (an authorized
#       ed25519 private key file), SSH_KNOWN_HOSTS (a known_hosts line for
#       the server) and SSHD_DIR
#   ssh_repo DIR         prints the ssh:// URL of the repository DIR
# shellcheck disable=SC2034 # the variables set here are for the caller
start_sshd() {
        SSHD_DIR="$WORK/sshd"
        mkdir -p "$SSHD_DIR"
        ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key" || return 1
        ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/client" || return 1
        cp "$SSHD_DIR/client.pub" "$SSHD_DIR/authorized_keys"
        SSHD_PORT=$(free_port)
        SSH_USER=$(id -un)
        SSH_KEY="$SSHD_DIR/client"
        cat >"$SSHD_DIR/config" <<EOC
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_key
AuthorizedKeysFile $SSHD_DIR/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
PidFile $SSHD_DIR/sshd.pid
EOC
        # Run as root, sshd wants its privilege separation directory.
        if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
                mkdir -p /run/sshd && chmod 0755 /run/sshd
        fi
        /usr/sbin/sshd -D -e -f "$SSHD_DIR/config" >"$SSHD_DIR/log" 2>&1 &
        T_PIDS+=($!)
        local i
        for ((i = 0; i < 100; i++)); do
                grep -q "Server listening" "$SSHD_DIR/log" && break
                sleep 0.1
        done
        grep -q "Server listening" "$SSHD_DIR/log" || {
                cat "$SSHD_DIR/log" >&2
                return 1
        }
        SSH_KNOWN_HOSTS="[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/host_key.pub")"
}

ssh_repo() {
        echo "ssh://$SSH_USER@127.0.0.1:$SSHD_PORT$1"
}
