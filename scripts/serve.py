"""Serve the built site on 127.0.0.1, gzip-compressing text as any static host does.

    python scripts/serve.py [PORT]      # then open http://127.0.0.1:PORT/

The browser tests (tests/test_site.py) and the page report (scripts/site_report.py) use the same
server, so what they measure is what a reader's browser receives.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import sys
import threading
from pathlib import Path

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"
COMPRESSED = {".html", ".js", ".css", ".json", ".svg", ".txt", ".map"}


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, gzip-encoded when the browser accepts it (as GitHub Pages or Netlify do)."""

    def log_message(self, *args):  # quiet: tests and reports print what matters
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (accepts and path.suffix in COMPRESSED and path.is_file()):
            return super().send_head()
        body = gzip.compress(path.read_bytes(), compresslevel=6)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


def start(directory: Path = SITE, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``directory`` in a background thread; returns the server and its base URL."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(GzipHandler, directory=str(directory))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


if __name__ == "__main__":
    server, url = start(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    print(f"Serving {SITE} at {url} (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
