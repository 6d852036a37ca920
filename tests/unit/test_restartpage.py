import http.client
import threading
from http.server import ThreadingHTTPServer

from labhub import restartpage


def test_every_request_gets_503_with_retry_after_and_the_page():
    server = ThreadingHTTPServer(("127.0.0.1", 0), restartpage.RestartPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for method in ("GET", "POST", "HEAD"):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
            conn.request(method, "/hub/login?next=%2Fhub%2F")
            r = conn.getresponse()
            body = r.read()
            assert (r.status, r.getheader("Retry-After"), r.getheader("Cache-Control")) == (503, "5", "no-store")
            assert (b"LabHub is restarting" in body) == (method != "HEAD")
            conn.close()
    finally:
        server.shutdown()
