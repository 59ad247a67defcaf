# peers.sh - sourced by run-all.sh and interleaved.sh: the command of each peer.
#
# peer_cmd PEER prints the bash command that runs PEER in the foreground, listening on
# 127.0.0.1:$LPORT and forwarding to $THOST:$TPORT. "direct" is "-" (no forwarder).
# "edge" is tpf's edge relay, $EDGE_BIN (default: the repository's bin/tpf-relay, built
# by make build). NAME=PATH is another build of tpf-relay under the label NAME (for
# comparing two versions in one sitting); peer_name prints the label.
peer_name() { echo "${1%%=*}"; }
peer_cmd() {
  case $1 in
    *=*) echo "exec ${1#*=} -listen 127.0.0.1:\$LPORT -target \$THOST:\$TPORT" ;;
    direct) echo - ;;
    haproxy) echo 'exec fwd/haproxy.sh' ;;
    nginx) echo 'exec fwd/nginx.sh' ;;
    socat) echo 'exec socat TCP-LISTEN:$LPORT,bind=127.0.0.1,fork,reuseaddr,backlog=1024 TCP:$THOST:$TPORT' ;;
    gofwd) echo 'exec bin/gofwd -listen 127.0.0.1:$LPORT -target $THOST:$TPORT' ;;
    gofwd-buf) echo 'exec bin/gofwd -buf 32768 -listen 127.0.0.1:$LPORT -target $THOST:$TPORT' ;;
    edge) echo "exec ${EDGE_BIN:-../../bin/tpf-relay} -listen 127.0.0.1:\$LPORT -target \$THOST:\$TPORT" ;;
    *) echo "unknown peer $1" >&2; return 1 ;;
  esac
}
