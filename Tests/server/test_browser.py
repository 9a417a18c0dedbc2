"""The chat page in a real browser: headless Chromium (Debian's package), driven over the DevTools
protocol, loads the page from `strata serve`, types a message, and sees the answer stream in."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import openai
import websocket

from conftest import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = os.path.join(os.environ.get("STRATA_HOME", os.path.expanduser("~/.cache/strata")), "screens", "chat-page.png")


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="strata-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "--window-size=1000,700", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            assert time.time() < deadline, "Chromium did not open its DevTools port"
            assert self.proc.poll() is None, "Chromium exited"
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        deadline = time.time() + 10
        while True:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5))
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            assert time.time() < deadline, "no page target"
            time.sleep(0.05)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expression, timeout, what):
        deadline = time.time() + timeout
        while not self.eval(expression):
            assert time.time() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def type_and_send(self, text):
        self.eval("document.getElementById('input').focus()")
        self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def test_chat_page_streams_an_answer():
    assert CHROMIUM, "Chromium is not installed: `make test` installs Debian's chromium package"
    server = Server("--parallel", "2", "--ctx", "1024")
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=server.url + "/")
        browser.wait("document.readyState === 'complete' && document.getElementById('model').textContent.includes('SmolLM2')",
                     20, "the page to load and list the model")
        browser.eval("document.getElementById('temperature').value = '0'; document.getElementById('max-tokens').value = '160'")
        question = "Tell me a story about a dragon who learns to bake bread."
        browser.type_and_send(question)
        assert browser.eval("document.getElementById('input').value") == ""
        # Watch the answer grow: several distinct partial texts before it is done.
        answer = "document.querySelector('.msg.assistant') ? document.querySelector('.msg.assistant').textContent : ''"
        done = "document.querySelector('.meta') && document.querySelector('.meta').dataset.done === '1'"
        seen = []
        shot = False
        deadline = time.time() + 60
        while not browser.eval(done):
            assert time.time() < deadline, "the answer never finished"
            text = browser.eval(answer)
            if text and (not seen or text != seen[-1]):
                seen.append(text)
                if len(seen) == 8 and not shot:
                    png = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
                    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
                    with open(SCREENSHOT, "wb") as f:
                        f.write(png)
                    shot = True
            time.sleep(0.01)
        final = browser.eval(answer)
        assert len(seen) >= 5, f"the answer did not stream: {len(seen)} distinct states"
        assert all(final.startswith(s) for s in seen), "partial texts are not prefixes of the answer"
        assert shot and os.path.getsize(SCREENSHOT) > 1000
        meta = browser.eval("document.querySelector('.meta').textContent")
        assert "tokens/s" in meta, meta
        # The page shows what the API answers for the same conversation.
        c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
        ref = c.chat.completions.create(model="m", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=160)
        assert final == ref.choices[0].message.content
        # The page keeps the conversation: a second turn reuses the cached first one.
        browser.type_and_send("Give it a name.")
        browser.wait("document.querySelectorAll('.meta').length === 2 && document.querySelectorAll('.meta')[1].dataset.done === '1'",
                     60, "the second answer")
        assert browser.eval("document.querySelectorAll('.msg.user').length") == 2
        meta2 = browser.eval("document.querySelectorAll('.meta')[1].textContent")
        cached = int(meta2.split("(")[1].split(" cached")[0])
        assert cached > 0, meta2
    finally:
        browser.close()
        assert server.stop() == 0
