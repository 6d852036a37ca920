"""The page Traefik shows for the hub's own pages while the hub is down (restarting, upgrading,
crashed): 503 with Retry-After, so a browser or script knows to come back, not a bare 502. User
servers do not need it: their routes live in the chp service (labhub.chp) and keep answering.

It runs as its own small service (`restart-page`: `python -m labhub.restartpage`, importing
nothing else of LabHub: 18 MB, where the labhub command's imports take 92), up whether or not the
hub is; Traefik's `errors` middleware on the hub's routes asks it (reverse-proxy/dynamic/labhub.toml)."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8080
RETRY_SECONDS = 5
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{RETRY_SECONDS}">
<title>LabHub is restarting</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}</style>
</head><body>
<h1>LabHub is restarting</h1>
<p>Try again in a few seconds; this page reloads itself. Open notebooks keep working meanwhile.</p>
</body></html>
""".encode()


class RestartPage(BaseHTTPRequestHandler):
    server_version = "LabHub"
    sys_version = ""

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Retry-After", str(RETRY_SECONDS))
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(PAGE)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format, *args) -> None:  # Traefik's access log has every request
        pass


def serve(port: int = PORT) -> None:
    ThreadingHTTPServer(("", port), RestartPage).serve_forever()


if __name__ == "__main__":
    serve()
