"""The test database served by real gunicorn workers, and a tiny HTTP browser that keeps its own cookie.

Used where only several processes show the behaviour (parallel requests racing for the operation log's tail, the
lockout and the lookup limit). The workers open the same database the test's `app` fixture prepared.
"""
import http.client
import os
import re
import secrets
import signal
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


def served_env(app, **extra):
    """The environment of a server process on the test database and instance folder (the test config written into
    instance/config.py, as a deployment would write it); `extra` variables added."""
    instance = Path(app.instance_path)
    (instance / "config.py").write_text(
        f"SECRET_KEY = {app.config['SECRET_KEY']!r}\n"
        f"NANBYO_ARGON2_PROFILE = {app.config['NANBYO_ARGON2_PROFILE']!r}\n", encoding="utf-8")
    env = dict(os.environ, NANBYO_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               NANBYO_INSTANCE_PATH=str(instance), **extra)
    env.pop("SECRET_KEY", None)
    return env


class Gunicorn:
    """`gunicorn -w N 'app:create_app()'` on the test database and instance folder. `env`: more variables (the
    task queue's URL, limits); `name`: its log's name, for several servers on one instance folder."""

    def __init__(self, app, workers=2, env=None, name="gunicorn"):
        self.port = free_port()
        instance = Path(app.instance_path)
        env = served_env(app, **(env or {}))
        self.log = instance / f"{name}.log"
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

    def workers(self):
        """The pids of the master's worker processes."""
        return children(self.process.pid)

    def kill_worker(self, pid):
        """SIGKILL one worker in the middle of what it does (the master then starts another)."""
        assert pid in self.workers()
        os.kill(pid, signal.SIGKILL)

    def stop(self):
        stop(self.process)


class Consumer:
    """`huey_consumer nanbyo.tasks.huey` on the test database and instance folder, as the worker service runs it
    (-n: no periodic clean-up, so that only the test decides when a job is given up)."""

    def __init__(self, app, env=None):
        self.log = Path(app.instance_path) / "huey.log"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "huey_consumer"), "nanbyo.tasks.huey", "-w", "1", "-m", "0.5", "-n",
             "-l", str(self.log)],
            cwd=ROOT, env=served_env(app, **(env or {})), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def errors(self):
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log.exists() else ""

    def kill(self):
        """SIGKILL: what the OOM killer or a power cut does, no clean-up in the process."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        stop(self.process)


def children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition, seconds=60, every=0.05, what="the condition"):
    """Poll until `condition()` is truthy and return its value; AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


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
