"""A stand-in for jupyterhub-singleuser in the polling benchmark: ~10 MB instead of ~100 MB.

Started by the real node agent with the real environment; it listens where the hub expects
the server (JUPYTERHUB_SERVICE_URL) and answers every GET with 200 and a small JSON body.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"stand_in": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    HTTPServer((url.hostname, url.port), Handler).serve_forever()
