"""A tiny MJPEG-over-HTTP camera for tests: `python mjpeg_server.py PORT [SCHEDULE] [--bad N] [--silent]`.

Serves multipart/x-mixed-replace JPEG frames of the synthetic motion source at its own rate,
on 127.0.0.1 only, as IP cameras do. `--bad N` sends every N-th part as bytes that are not a
JPEG; `--silent` accepts connections and never answers (a URL that hangs).
"""

from __future__ import annotations

import argparse
import http.server
import socketserver
import sys
import time

BOUNDARY = b"lvtframe"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("schedule", nargs="?", default="synth:left=4,up=4")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--bad", type=int, default=0)
    ap.add_argument("--silent", action="store_true")
    args = ap.parse_args()

    import cv2

    from lvt_edge.stream.sources import SourceOptions, open_source

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if args.silent:
                time.sleep(3600)
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.end_headers()
            source = open_source(args.schedule, SourceOptions(pace=1.0, fps=args.fps, loop=True))
            source.open()
            n = 0
            try:
                while (frame := source.read()) is not None:
                    n += 1
                    ok, jpg = cv2.imencode(".jpg", frame.image)
                    data = jpg.tobytes() if not (args.bad and n % args.bad == 0) else b"\xff\xd8 not a jpeg " * 40
                    self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *a) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", args.port), Handler) as httpd:
        print("ready", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
