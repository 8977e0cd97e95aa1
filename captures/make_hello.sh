#!/usr/bin/env bash
# Re-record captures/hello.pcap from the real kernel: two network namespaces
# joined by a veth pair (10.77.0.1 client, 10.77.0.2 server), tcpdump on the
# client side, a Python client/server doing handshake, one request/response, close.
# Run as root.  Touches only the namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")"
C=tracer-hello-c S=tracer-hello-s
cleanup() { ip netns del "$C" 2>/dev/null || true; ip netns del "$S" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$C"; ip netns add "$S"
# No IPv6: keeps router/neighbour solicitations out of the demo.
for n in "$C" "$S"; do ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
ip link add hc0 netns "$C" type veth peer name hs0 netns "$S"
ip -n "$C" addr add 10.77.0.1/24 dev hc0; ip -n "$S" addr add 10.77.0.2/24 dev hs0
ip -n "$C" link set hc0 up; ip -n "$S" link set hs0 up
ip -n "$C" link set lo up; ip -n "$S" link set lo up
# Static neighbours: no ARP frames in the demo, only the TCP conversation.
ip -n "$C" neigh add 10.77.0.2 lladdr "$(ip -n "$S" -o link show hs0 | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)" dev hc0
ip -n "$S" neigh add 10.77.0.1 lladdr "$(ip -n "$C" -o link show hc0 | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)" dev hs0
ip netns exec "$S" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 7777)); s.listen(1)
c, _ = s.accept(); data = c.recv(100); c.sendall(b"hello, " + data); c.recv(100); c.close(); s.close()
' &
srv=$!
ip netns exec "$C" tcpdump -i hc0 -s 0 -U -w hello.pcap.tmp 2>/dev/null &
dump=$!
sleep 1.5
ip netns exec "$C" python3 -c '
import socket, time
c = socket.create_connection(("10.77.0.2", 7777)); time.sleep(0.05)
c.sendall(b"client\n"); print(c.recv(100)); time.sleep(0.05); c.close()
'
wait "$srv"
sleep 0.5
kill -INT "$dump"; wait "$dump" || true
mv hello.pcap.tmp hello.pcap
tshark -r hello.pcap
