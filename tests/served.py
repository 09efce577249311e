"""The test database served by real gunicorn workers, and a tiny HTTP browser that keeps its own cookie.

Used where only several processes show the behaviour (parallel requests racing for the operation log's tail, the
lockout and the lookup limit). The workers open the same database the test's `app` fixture prepared.
"""
import http.client
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """`gunicorn -w N 'app:create_app()'` on the test database and instance folder."""

    def __init__(self, app, workers=2):
        self.port = free_port()
        instance = Path(app.instance_path)
        # The test config, as a deployment would write it into instance/config.py.
        (instance / "config.py").write_text(
            f"SECRET_KEY = {app.config['SECRET_KEY']!r}\n"
            f"NANBYO_ARGON2_PROFILE = {app.config['NANBYO_ARGON2_PROFILE']!r}\n", encoding="utf-8")
        env = dict(os.environ, NANBYO_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   NANBYO_INSTANCE_PATH=str(instance))
        env.pop("SECRET_KEY", None)
        self.log = instance / "gunicorn.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--timeout", "120", "--error-logfile", str(self.log), "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.errors()}")
            try:
                if Browser(self.port).get("/login").status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer: {self.errors()}")

    def errors(self):
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    @property
    def location(self):
        return self.headers.get("location", "")


class Browser:
    """One browser: its own cookies, one connection per request (parallel browsers share nothing)."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
            for name, value in raw.getheaders():
                if name.lower() == "set-cookie":
                    cookie_name, _, rest = value.partition("=")
                    self.cookies[cookie_name] = rest.split(";", 1)[0]
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def csrf(self, path):
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', self.get(path).text)
        assert match, f"no csrf_token on {path}"
        return match.group(1)

    def post(self, path, fields, files=None):
        """multipart/form-data, as the login form sends it."""
        boundary = secrets.token_hex(16)
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                         + str(value).encode() + b"\r\n")
        for name, (filename, content) in (files or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
