"""`strata serve` through the official `openai` Python client, over real loopback sockets."""
import base64
import json
import re
import struct
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

import subprocess

from conftest import BINARY, Server, finish_reason, generate

QUESTIONS = [
    "What is the capital of France?", "Name three primary colors.", "What is 7 times 8?",
    "Write a haiku about the sea.", "Who wrote Romeo and Juliet?", "What is the boiling point of water?",
    "Give me a synonym for happy.", "What is the largest planet?", "Translate 'thank you' into Spanish.",
    "What is photosynthesis?", "How many legs does a spider have?", "What color is the sky on a clear day?",
]


def client(server, **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, timeout=120, **kw)


def model_id(server):
    return client(server).models.list().data[0].id


def test_lists_the_model(server):
    models = client(server).models.list().data
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct.Q4_1", "all-minilm-l6-v2"]
    assert models[0].object == "model"


def test_chat_equals_generate_plain_and_streamed(server):
    c = client(server)
    question = QUESTIONS[0]
    ref = generate(question, 40, chat=True)
    plain = c.chat.completions.create(model=model_id(server), messages=[{"role": "user", "content": question}],
                                      temperature=0, max_tokens=40)
    assert plain.choices[0].message.content == ref["text"]
    assert plain.choices[0].finish_reason == finish_reason(ref["finish_reason"])
    assert plain.usage.prompt_tokens == len(ref["prompt_ids"])
    assert plain.usage.completion_tokens == len(ref["ids"])

    chunks = list(c.chat.completions.create(model=model_id(server), messages=[{"role": "user", "content": question}],
                                            temperature=0, max_tokens=40, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == ref["text"]
    reasons = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert reasons == [finish_reason(ref["finish_reason"])]
    assert len(chunks) > 3, "the answer came in one piece, not streamed"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == len(ref["ids"]) and usage.prompt_tokens == len(ref["prompt_ids"])


def test_completion_equals_generate(server):
    prompt = "The three laws of robotics are"
    ref = generate(prompt, 32)
    got = client(server).completions.create(model=model_id(server), prompt=prompt, temperature=0, max_tokens=32)
    assert got.choices[0].text == ref["text"]
    assert got.choices[0].finish_reason == finish_reason(ref["finish_reason"])
    streamed = client(server).completions.create(model=model_id(server), prompt=prompt, temperature=0, max_tokens=32, stream=True)
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == ref["text"]


def ask(server, question, **kw):
    r = client(server).chat.completions.create(model="any", messages=[{"role": "user", "content": question}], **kw)
    return r.choices[0].message.content, r.choices[0].finish_reason


def test_twelve_concurrent_requests_equal_their_answers_alone(server):
    # Greedy and seeded sampling: each request samples with its own parameters, as it would alone.
    settings = [dict(temperature=0, max_tokens=32) if i % 2 == 0 else dict(temperature=0.9, seed=1000 + i, max_tokens=32)
                for i in range(12)]
    alone = [ask(server, q, **s) for q, s in zip(QUESTIONS, settings)]
    before = server.metrics()
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda qs: ask(server, qs[0], **qs[1]), zip(QUESTIONS, settings)))
    after = server.metrics()
    assert together == alone
    assert all(text for text, _ in together)
    assert after['strata_requests_total{status="200"}'] - before['strata_requests_total{status="200"}'] == 12
    # They shared steps: far fewer forward steps than tokens generated (one at a time, steps ≥ tokens).
    steps = after["strata_batch_steps_total"] - before["strata_batch_steps_total"]
    generated = after["strata_generated_tokens_total"] - before["strata_generated_tokens_total"]
    assert steps < generated / 2, (steps, generated)
    # The reference for one of them, from the command line.
    assert alone[0][0] == generate(QUESTIONS[0], 32, chat=True)["text"]


def test_bad_parameters_get_400(server):
    c = client(server)
    for kw, param in [(dict(temperature=-1), "temperature"), (dict(max_tokens=-5), "max_tokens"), (dict(top_p=7), "top_p")]:
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], **kw)
        assert e.value.status_code == 400
        assert e.value.body["param"] == param, e.value.body
        assert e.value.body["type"] == "invalid_request_error"


def test_malformed_requests_get_clear_errors(server):
    status, body, _ = server.post("/v1/chat/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_json"
    status, body, _ = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"})
    assert status == 400 and json.loads(body)["error"]["param"] == "max_tokens"
    status, body, _ = server.post("/v1/chat/completions", {"messages": []})
    assert status == 400 and json.loads(body)["error"]["param"] == "messages"
    status, body, _ = server.post("/v1/completions", b"x" * (9 << 20))
    assert status == 413 and "error" in json.loads(body)
    long_prompt = "hello " * 2000
    status, body, _ = server.post("/v1/completions", {"prompt": long_prompt, "max_tokens": 4})
    assert status == 400 and json.loads(body)["error"]["code"] == "context_length_exceeded"
    status, body, _ = server.post("/v1/completions", {"prompt": "Hi", "stop": ["x"] * 17})
    assert status == 400 and json.loads(body)["error"]["param"] == "stop"
    status, body, _ = server.post("/v1/completions", {"prompt": "Hi", "stop": "y" * 5000})
    assert status == 400 and json.loads(body)["error"]["param"] == "stop"
    # Unknown fields are ignored.
    status, body, _ = server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2, "temperature": 0, "frobnicate": {"x": 1}})
    assert status == 200, body
    # A raw socket speaking nonsense does not take the server down.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")
        s.recv(1024)
    assert server.get("/health")[0] == 200


def raw_exchange(port, data, half_close=False, timeout=10):
    """Sends `data` on a new loopback connection (then closes the sending side with `half_close`)
    and reads until the server closes or `timeout`: (status, body) of the answer, or (None, b"")."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
            head, sep, rest = got.partition(b"\r\n\r\n")
            m = sep and re.search(rb"content-length: *(\d+)", head, re.I)
            if m and len(rest) >= int(m.group(1)):
                break
    if not got:
        return None, b""
    head, _, rest = got.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def test_cut_short_and_odd_bodies_get_clear_errors(server):
    # A body cut short (the client's sending side closes before Content-Length bytes): 400, not 500.
    status, body = raw_exchange(server.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 100\r\n\r\n{\"prompt\":", half_close=True)
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_http", body
    # Valid JSON whose number does not fit its field is not called invalid JSON.
    status, body, _ = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5})
    err = json.loads(body)["error"]
    assert status == 400 and err["code"] != "invalid_json" and "does not fit its field" in err["message"], body
    # A body that is JSON but not an object.
    status, body, _ = server.post("/v1/chat/completions", b"[]")
    err = json.loads(body)["error"]
    assert status == 400 and err["param"] is None and "JSON object" in err["message"], body
    # A client that half-closes after a complete plain request counts as gone, and reads why.
    req = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "ignore_eos": True}).encode()
    status, body = raw_exchange(server.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n" % len(req) + req, half_close=True, timeout=30)
    assert status == 499 and json.loads(body)["error"]["code"] == "client_closed_request", body
    server.wait_for("strata_requests_processing", 0, 5, "the half-closed request kept decoding")
    assert server.get("/health")[0] == 200


def test_idle_connections_are_closed_but_not_while_answering():
    s = Server("--parallel", "1", "--ctx", "512", "--idle-timeout", "0.2", "--threads", "1")
    try:
        # A head that never ends: the server closes the connection after about 0.2 s.
        t = time.time()
        status, _ = raw_exchange(s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n", timeout=10)
        assert status is None and time.time() - t < 5
        # A body that stops coming (a huge declared length, one byte sent): closed the same way.
        t = time.time()
        status, _ = raw_exchange(s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 99999999999\r\n\r\n{", timeout=10)
        assert status is None and time.time() - t < 5
        # A request whose answer takes longer than the timeout still gets it.
        t = time.time()
        status, body, _ = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0, "ignore_eos": True})
        assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 200
        assert time.time() - t > 0.3, "the answer came too fast to test the timeout's waiting for it"
    finally:
        assert s.stop() == 0, "".join(s.log[-20:])


def test_logprob_bytes_and_text_offsets(server):
    c = client(server)
    # A token holding part of a character: its bytes are its own, not U+FFFD's.
    emoji = "\U0001F600"
    ids = json.loads(server.post("/tokenize", {"content": emoji})[1])["tokens"]
    assert len(ids) > 1, "the emoji is one token: pick another"
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], temperature=0, max_tokens=len(ids),
                                  logprobs=True, logit_bias={str(i): 100 for i in ids[:1]})
    first = r.choices[0].logprobs.content[0]
    assert bytes(first.bytes) == emoji.encode()[:len(first.bytes)] and first.bytes != [0xEF, 0xBF, 0xBD], first
    # Completions' text_offset counts characters into the returned text, echoed prompt included.
    prompt = "Caf\u00e9 au lait, s'il vous pla\u00eet:"
    r = c.completions.create(model="m", prompt=prompt, max_tokens=6, temperature=0, logprobs=2, echo=True)
    text, lp = r.choices[0].text, r.choices[0].logprobs
    assert text.startswith(prompt) and lp.text_offset[0] == len(prompt)
    ends = lp.text_offset[1:] + [len(text)]
    pieces = [text[a:b] for a, b in zip(lp.text_offset, ends)]
    assert "".join(pieces) == text[len(prompt):]
    assert all(p == tok for p, tok in zip(pieces, lp.tokens) if "\ufffd" not in tok), (pieces, lp.tokens)
    # Characters, not bytes: a two-byte character forced six times advances the offsets by one each.
    e_acute = json.loads(server.post("/tokenize", {"content": "\u00e9"})[1])["tokens"]
    assert len(e_acute) == 1, "é is more than one token: pick another"
    r = c.completions.create(model="m", prompt=prompt, max_tokens=6, temperature=0, logprobs=1, echo=True,
                             logit_bias={str(e_acute[0]): 100})
    assert r.choices[0].text == prompt + "\u00e9" * 6
    assert r.choices[0].logprobs.text_offset == [len(prompt) + i for i in range(6)]
    # The same offsets when streamed.
    streamed = []
    for chunk in c.completions.create(model="m", prompt=prompt, max_tokens=6, temperature=0, logprobs=2, echo=True, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed += chunk.choices[0].logprobs.text_offset
    assert streamed == lp.text_offset


def test_max_tokens_beyond_the_room_left_ends_with_length(server):
    # 1024 positions per slot: a prompt of ~1000 tokens has room for a few more, not 500.
    prompt = "one two three four " * 240
    r = client(server).completions.create(model="m", prompt=prompt, temperature=0, max_tokens=500, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    # The slot fills: every position holds a prompt or fed-back token; the last token sampled is not fed back.
    assert r.usage.prompt_tokens + r.usage.completion_tokens == 1024 + 1
    assert r.usage.completion_tokens < 500


def test_stop_strings_logprobs_and_n(server):
    c = client(server)
    plain = c.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTIONS[0]}], temperature=0, max_tokens=40)
    full = plain.choices[0].message.content
    assert "Paris" in full
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTIONS[0]}], temperature=0,
                                  max_tokens=40, stop=["Paris"])
    assert r.choices[0].message.content == full[:full.index("Paris")] and r.choices[0].finish_reason == "stop"
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTIONS[2]}], temperature=0,
                                  max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for step in content:
        assert len(step.top_logprobs) == 3 and step.logprob <= 0
        assert step.token == step.top_logprobs[0].token  # greedy: the chosen token is the likeliest
    # n choices: choice i samples with seed + i, exactly as a request of its own would.
    before = server.metrics()
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTIONS[3]}], temperature=1.0,
                                  max_tokens=16, n=3, seed=77)
    after = server.metrics()
    assert [ch.index for ch in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == after["strata_generated_tokens_total"] - before["strata_generated_tokens_total"]
    alone = [ask(server, QUESTIONS[3], temperature=1.0, max_tokens=16, seed=77 + i)[0] for i in range(3)]
    assert [ch.message.content for ch in r.choices] == alone
    assert len(set(alone)) > 1, "three seeds gave one answer"


def test_second_turn_computes_only_the_new_tokens(server):
    c = client(server)
    first = [{"role": "user", "content": "Tell me one fact about owls."}]
    r1 = c.chat.completions.create(model="m", messages=first, temperature=0, max_tokens=48)
    second = first + [{"role": "assistant", "content": r1.choices[0].message.content},
                      {"role": "user", "content": "And one about cats?"}]
    before = server.metrics()
    r2 = c.chat.completions.create(model="m", messages=second, temperature=0, max_tokens=16)
    after = server.metrics()
    cached = r2.usage.prompt_tokens_details.cached_tokens
    assert cached >= r1.usage.prompt_tokens, (cached, r1.usage.prompt_tokens)
    computed = after["strata_prompt_computed_tokens_total"] - before["strata_prompt_computed_tokens_total"]
    assert computed == r2.usage.prompt_tokens - cached
    assert computed < r2.usage.prompt_tokens - r1.usage.prompt_tokens
    # And the answer is the one computed from scratch.
    assert r2.choices[0].message.content == generate_chat_from_scratch(second, 16)


def generate_chat_from_scratch(messages, max_tokens):
    s = Server("--parallel", "1", "--ctx", "1024")
    try:
        r = client(s).chat.completions.create(model="m", messages=messages, temperature=0, max_tokens=max_tokens)
        assert r.usage.prompt_tokens_details.cached_tokens == 0
        return r.choices[0].message.content
    finally:
        assert s.stop() == 0


def test_disconnect_frees_the_slot(server):
    c = client(server)
    stream = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tell me a very long story."}],
                                       temperature=0, max_tokens=1000, stream=True, extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 5:
            break
    assert server.metrics()["strata_requests_processing"] == 1
    stream.close()
    server.wait_for("strata_requests_processing", 0, 2, "the sequence kept decoding after its client left")


def test_tokenize_detokenize_and_health(server):
    status, body, _ = server.post("/tokenize", {"content": "Hello world"})
    ids = json.loads(body)["tokens"]
    assert status == 200 and len(ids) == 2
    status, body, _ = server.post("/detokenize", {"tokens": ids})
    assert json.loads(body)["content"] == "Hello world"
    status, body, _ = server.post("/detokenize", {"tokens": [10 ** 9]})
    assert status == 400
    status, body = server.get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_backpressure_503_and_the_rest_complete():
    s = Server("--parallel", "4", "--queue", "4", "--ctx", "512")
    try:
        def one(i):
            try:
                r = client(s).completions.create(model="m", prompt=f"Story number {i}:", temperature=0, max_tokens=96,
                                                 extra_body={"ignore_eos": True})
                return r.choices[0].finish_reason, len(r.choices[0].text)
            except openai.APIStatusError as e:
                return e.status_code, e.response.headers.get("retry-after")
        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(24)))
        rejected = [r for r in results if r[0] == 503]
        done = [r for r in results if r[0] == "length"]
        assert rejected, results
        assert all(r[1] == "1" for r in rejected)  # Retry-After
        assert len(done) + len(rejected) == 24, results
        assert len(done) >= 8
        assert s.metrics()["strata_requests_rejected_total"] == len(rejected)
    finally:
        assert s.stop() == 0


def test_api_key():
    s = Server("--parallel", "1", "--ctx", "256", "--api-key", "sesame")
    try:
        with pytest.raises(openai.AuthenticationError):
            client(s, api_key="wrong").models.list()
        assert s.get("/v1/models")[0] == 401  # no key at all
        assert s.get("//v1//models")[0] == 401  # the router's reading of the path, not only the literal prefix
        assert s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0] == 401
        assert s.post("/tokenize", {"content": "hi"})[0] == 401
        assert client(s, api_key="sesame").models.list().data
        assert s.get("//v1//models", headers={"Authorization": "Bearer sesame"})[0] == 200
        assert s.get("/health")[0] == 200 and s.get("/metrics")[0] == 200
    finally:
        assert s.stop() == 0


def test_sigterm_lets_a_running_request_finish():
    s = Server("--parallel", "2", "--ctx", "512", "--grace", "30")
    stream = client(s).completions.create(model="m", prompt="Once upon a time", temperature=0, max_tokens=120, stream=True,
                                          extra_body={"ignore_eos": True})
    pieces = []
    for i, ch in enumerate(stream):
        if i == 3:
            s.proc.send_signal(signal.SIGTERM)
        pieces.extend(ch.choices)
    assert pieces[-1].finish_reason == "length"
    assert s.proc.wait(30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_a_plain_request_cut_off_by_the_grace_period_is_the_servers_doing():
    # When the grace period runs out the server closes the connection (the client reads no
    # answer); its log and metrics must not blame the client (499) for it.
    s = Server("--parallel", "1", "--ctx", "1024", "--grace", "0.5", "--threads", "1")
    result = {}

    def ask_long():
        try:
            result["answer"] = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 1000, "temperature": 0, "ignore_eos": True})
        except Exception as e:  # the connection closes without an answer
            result["error"] = e

    t = threading.Thread(target=ask_long)
    t.start()
    s.wait_for("strata_requests_processing", 1, 10, "the request never started")
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert not t.is_alive() and result
    assert s.proc.wait(30) == 0
    log = "".join(s.log)
    assert "POST /v1/completions 503" in log and "the client closed the connection" not in log, log[-2000:]


def test_a_plain_request_whose_client_leaves_is_cancelled(server):
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 900, "temperature": 0, "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    server.wait_for("strata_requests_processing", 1, 10, "the request never started")
    generated = server.metrics()["strata_generated_tokens_total"]
    s.close()
    server.wait_for("strata_requests_processing", 0, 2, "the sequence kept decoding after its client left")
    # It ended early: far fewer than 900 tokens were generated.
    assert server.metrics()["strata_generated_tokens_total"] - generated < 600


def test_logit_bias_bans_a_token(server):
    c = client(server)
    question = [{"role": "user", "content": QUESTIONS[0]}]
    plain = c.chat.completions.create(model="m", messages=question, temperature=0, max_tokens=6, logprobs=True)
    first = plain.choices[0].logprobs.content[0].token
    ids = json.loads(server.post("/tokenize", {"content": first})[1])["tokens"]
    assert len(ids) == 1
    banned = c.chat.completions.create(model="m", messages=question, temperature=0, max_tokens=6, logprobs=True,
                                       logit_bias={str(ids[0]): -100})
    assert banned.choices[0].logprobs.content[0].token != first


def test_embeddings_equal_strata_embed(server):
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."]
    out = subprocess.run([BINARY, "embed", "--model", "all-minilm-l6-v2", *texts], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ref = [json.loads(line)["embedding"] for line in out.stdout.splitlines()]
    c = client(server)
    for fmt in ("float", "base64"):
        r = c.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format=fmt)
        assert [d.index for d in r.data] == [0, 1, 2]
        for got, want in zip(r.data, ref):
            vector = got.embedding if fmt == "float" else struct.unpack("<384f", base64.b64decode(got.embedding))
            assert len(vector) == 384
            assert max(abs(a - b) for a, b in zip(vector, want)) < 1e-6
        assert r.usage.prompt_tokens == sum(len(json.loads(line)["ids"]) for line in out.stdout.splitlines())
    # Without encoding_format the client asks for base64 itself and decodes it.
    default = c.embeddings.create(model="all-minilm-l6-v2", input=texts[0])
    assert max(abs(a - b) for a, b in zip(default.data[0].embedding, ref[0])) < 1e-6
    status, body, _ = server.post("/v1/embeddings", {"input": [], "model": "m"})
    assert status == 400 and json.loads(body)["error"]["param"] == "input"
    status, body, _ = server.post("/v1/embeddings", {"input": "x", "dimensions": 7})
    assert status == 400 and json.loads(body)["error"]["param"] == "dimensions"


def test_a_queued_request_whose_client_leaves_leaves_the_queue():
    s = Server("--parallel", "1", "--queue", "4", "--ctx", "1024")
    try:
        c = client(s)
        running = c.completions.create(model="m", prompt="Once upon a time", temperature=0, max_tokens=600, stream=True,
                                       extra_body={"ignore_eos": True})
        next(iter(running))
        waiting = c.completions.create(model="m", prompt="Another story", temperature=0, max_tokens=8, stream=True)
        s.wait_for("strata_requests_queued", 1, 10, "the second request never queued")
        waiting.close()
        s.wait_for("strata_requests_queued", 0, 2, "a request whose client left stayed in the queue")
        assert s.metrics()["strata_requests_processing"] == 1  # the first one goes on
        running.close()
    finally:
        assert s.stop() == 0


def test_a_client_leaving_mid_prefill_stops_the_prefill():
    # Prefill in chunks of 8 tokens: a ~1,900-token prompt takes a few hundred steps.
    s = Server("--parallel", "1", "--ctx", "2048", "--batch-tokens", "8")
    try:
        prompt = "one two three four " * 470
        n = len(json.loads(s.post("/tokenize", {"content": prompt, "add_special": True})[1])["tokens"])
        stream = client(s).completions.create(model="m", prompt=prompt, temperature=0, max_tokens=4, stream=True)
        s.wait_for("strata_requests_processing", 1, 10, "the request never started")
        stream.close()
        s.wait_for("strata_requests_processing", 0, 2, "the prefill went on after its client left")
        computed = s.metrics()["strata_prompt_computed_tokens_total"]
        assert computed < n, (computed, n)
    finally:
        assert s.stop() == 0
