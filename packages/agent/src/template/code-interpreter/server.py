"""Wrenn's code-interpreter service: E2B's code-interpreter protocol over Jupyter kernels.

Runs inside a `code-interpreter` sandbox on port 49999 (started by envd from
/etc/wrenn/start.json). Only the standard library and Debian's jupyter_client:

  POST   /execute {code, language?, context_id?, env_vars?}  one JSON object per line
  POST   /contexts {language?, cwd?} -> {id, language, cwd}
  GET    /contexts
  POST   /contexts/<id>/restart
  DELETE /contexts/<id>
  GET    /health -> "OK"

Errors answer {"code": <status>, "message": ...}.
"""

import argparse
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from contexts import KEEPALIVE_SECONDS, Contexts, HttpError, finite
from relay import Relay

MAX_BODY_BYTES = 64 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wrenn-code-interpreter"
    contexts: Contexts = None  # set by main()

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.command} {self.path} {format % args}\n")

    # --- plumbing -------------------------------------------------------------------------

    def _body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY_BYTES:
                    raise HttpError(413, "request body too large")
        else:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                raise HttpError(413, "request body too large")
            data = self.rfile.read(length) if length else b""
        if not data.strip():
            return {}
        try:
            body = json.loads(data)
        except ValueError as err:
            raise HttpError(400, f"body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return body

    def _send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, routes):
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            for pattern, handler in routes:
                match = re.fullmatch(pattern, path)
                if match:
                    handler(*match.groups())
                    return
            raise HttpError(404, f"no route {self.command} {path}")
        except HttpError as err:
            self._send_json(err.status, {"code": err.status, "message": err.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # the kernel machinery failed: say so, stay up
            self._send_json(500, {"code": 500, "message": f"{type(err).__name__}: {err}"})

    def do_GET(self):
        self._dispatch([(r"/health", self._health), (r"/contexts", self._list)])

    def do_POST(self):
        self._dispatch(
            [
                (r"/execute", self._execute),
                (r"/contexts", self._create),
                (r"/contexts/([^/]+)/restart", self._restart),
            ]
        )

    def do_DELETE(self):
        self._dispatch([(r"/contexts/([^/]+)", self._remove)])

    # --- routes ---------------------------------------------------------------------------

    def _health(self):
        self._send_json(200, "OK")

    def _list(self):
        self._send_json(200, self.contexts.list())

    def _create(self):
        body = self._body()
        cwd = body.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise HttpError(400, "cwd must be a string")
        ctx = self.contexts.create(body.get("language"), cwd)
        self._send_json(200, ctx.describe())

    def _restart(self, context_id):
        self.contexts.restart(context_id)
        self._send_json(200, None)

    def _remove(self, context_id):
        self.contexts.remove(context_id)
        self._send_json(200, None)

    def _execute(self):
        body = self._body()
        code, context_id, language = body.get("code"), body.get("context_id"), body.get("language")
        env_vars = body.get("env_vars") or {}
        if not isinstance(code, str):
            raise HttpError(400, "code must be a string")
        if context_id and language:
            raise HttpError(400, "only one of context_id or language can be given")
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise HttpError(400, "env_vars must map strings to strings")
        ctx = self.contexts.get(context_id) if context_id else self.contexts.default(language)

        with ctx.lock:
            self.send_response(200)
            self.send_header("content-type", "application/x-ndjson")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-store")
            self.end_headers()
            # The cell is read on the relay's thread, so a slow client cannot make it queue.
            relay = Relay(ctx.execute(code, env_vars), ctx.interrupt, KEEPALIVE_SECONDS)
            try:
                for item in relay:
                    self._chunk(item if item is not None else {"type": "keepalive"})
                self._chunk({"type": "end_of_execution"})
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as err:
                # Headers are sent: the failure goes into the stream, which then ends.
                self.close_connection = True
                self._chunk(
                    {
                        "type": "error",
                        "name": type(err).__name__,
                        "value": str(err),
                        "traceback": "",
                    }
                )
                self._chunk({"type": "unexpected_end_of_execution"})
                self._chunk({"type": "end_of_execution"})
                self.wfile.write(b"0\r\n\r\n")
            finally:
                # The context is free once its cell is over: a cell the client left is interrupted.
                relay.abandon()

    def _chunk(self, value):
        try:
            line = json.dumps(value, allow_nan=False)
        except ValueError:
            line = json.dumps(finite(value))
        data = (line + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=49999)
    parser.add_argument("--cwd", default=os.path.expanduser("~"))
    args = parser.parse_args()

    contexts = Contexts(args.cwd)
    # The default Python kernel is up before the port opens: "port answers" means "ready".
    contexts.default("python")
    Handler.contexts = contexts
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"code interpreter listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        contexts.shutdown_all()


if __name__ == "__main__":
    main()
