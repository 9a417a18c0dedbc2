"""Starts `strata serve` on a free loopback port for the server tests, and runs `strata generate`
for the reference answers. Everything stays on 127.0.0.1; every wait is bounded."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("STRATA_BIN", os.path.join(ROOT, ".build", "release", "strata"))
MODEL = os.environ.get("STRATA_MODEL") or os.path.join(
    os.environ.get("STRATA_HOME", os.path.expanduser("~/.cache/strata")), "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


class Server:
    """A running `strata serve`: its base URL, its stderr (collected on a thread) and its process."""

    def __init__(self, *args, timeout=60):
        self.args = [BINARY, "serve", "--model", MODEL, "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError("strata serve did not start:\n" + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = self.get("/health")
            if status == 200:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("strata serve never became healthy:\n" + "".join(self.log))

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def metrics(self):
        """The Prometheus text as {name{labels}: value}."""
        _, text = self.get("/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_for(self, metric, value, seconds, what):
        """Polls /metrics until `metric` equals `value`; fails with `what` after `seconds`."""
        deadline = time.time() + seconds
        while self.metrics()[metric] != value:
            assert time.time() < deadline, what
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    s = Server("--parallel", "4", "--queue", "16", "--ctx", "1024", "--embedding-model", "all-minilm-l6-v2")
    yield s
    assert s.stop() == 0, "".join(s.log[-20:])


def generate(prompt, max_tokens, chat=False, extra=()):
    """`strata generate --temperature 0` as the reference: its JSON output."""
    args = [BINARY, "generate", "--model", MODEL, "--temperature", "0", "--max-tokens", str(max_tokens), "--json", *extra]
    if chat:
        args.append("--chat")
    args.append(prompt)
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def finish_reason(generate_reason):
    return {"eos": "stop", "stop": "stop", "length": "length"}[generate_reason]
