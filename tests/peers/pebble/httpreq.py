"""Test peer: the endpoint of lego's httpreq DNS provider (Traefik's dns-01 in the test), which sets
the TXT records in pebble-challtestsrv, the DNS server Pebble resolves through. lego POSTs
{"fqdn", "value"} to /present and /cleanup; challtestsrv's API takes {"host", "value"} at /set-txt
and {"host"} at /clear-txt. Usage: python3 httpreq.py <challtestsrv's API URL>."""

import json
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHALLTESTSRV = sys.argv[1]
CALLS = {"/present": "/set-txt", "/cleanup": "/clear-txt"}
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # container addresses, never a proxy


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path not in CALLS:
            self.send_error(404)
            return
        record = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = {"host": record["fqdn"], **({"value": record["value"]} if self.path == "/present" else {})}
        request = urllib.request.Request(CHALLTESTSRV + CALLS[self.path], json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with DIRECT.open(request, timeout=10) as answer:
            self.send_response(answer.status)
            self.end_headers()


ThreadingHTTPServer(("", 8080), Handler).serve_forever()
