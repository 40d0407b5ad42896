"""A loopback HTTP server over a folder, for tests that download weights (`models pull`, judges)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder without logging every request to stderr."""

    def log_message(self, *args):
        pass


@contextmanager
def serve_folder(directory: Path, handler: type[http.server.SimpleHTTPRequestHandler] = QuietHandler,
                 ) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving ``directory`` until the block ends."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
