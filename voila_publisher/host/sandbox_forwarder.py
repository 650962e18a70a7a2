"""Inside a dashboard kernel's sandbox: offer the egress proxy's Unix socket as 127.0.0.1:PORT,
then become the kernel.

    python sandbox_forwarder.py PORT SOCKET -- kernel command...

Standard library only and run by path (the sandbox sees the Python environment, not this
package's source), see :mod:`voila_publisher.host.egress`.
"""

import os
import socket
import sys
import threading


def relay(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(port: int, path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=relay, args=(a, b), daemon=True).start()


def main() -> None:
    port, path, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        sys.exit("usage: sandbox_forwarder.py PORT SOCKET -- command...")
    if os.fork() == 0:
        # The forwarder: it lives as long as the sandbox (its PID namespace ends with the kernel).
        os.setsid()
        serve(int(port), path)
        os._exit(0)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
