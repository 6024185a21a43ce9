#!/usr/bin/python3
"""Stand-in RAG service (rag-whisper, rag-embedding-server, rag-llm-server, rag-dots-ocr,
rag-llm-gptoss): a small HTTP server whose GET /health answers 200 only when the container is set
up the way the real service needs it:

  * the model is staged: $HF_HOME/hub/models--<org>--<name>/snapshots/<MODEL_REVISION> exists, is
    readable and holds files (MODEL_ID / MODEL_NAME and MODEL_REVISION from the environment);
  * the service runs offline: HF_HUB_OFFLINE=1;
  * the GPUs it was given are usable (unless DEVICE=cpu): NVML inside the container (the driver
    library the container toolkit injects) sees at least one GPU, CUDA_VISIBLE_DEVICES — when set —
    names only ordinals below that count or visible UUIDs (inside a container the GPUs are numbered
    from 0: the seed's `--gpus device=2,3 -e CUDA_VISIBLE_DEVICES=2,3` leaves no usable GPU), a
    tensor-parallel size fits the visible GPUs, and on an NVSwitch machine the fabric manager has
    initialised the fabric.

The body says why when unhealthy. `rag_standin.py --probe` is the image's HEALTHCHECK command.

On its GPUs it uses what the real service would, visible through NVML inside and outside the
container (the simulated driver reads /tmp/gpu-sim/processes.d/service.json): once its model is
staged, a service with GPU_MEMORY_UTILIZATION (vLLM) takes that fraction of each GPU's memory, any
other its map's VRAM estimate split over its GPUs (the container's
`io.ragops.gpu-stack.vram-estimate-gb` label), else a 512 MiB CUDA context. Utilisation follows the
requests it serves: each request costs REQUEST_GPU_MS of GPU time, averaged over about two seconds,
so a load makes it rise and idling lets it fall. DEVICE=cpu uses no GPU.

Each kind also answers one small request endpoint with a fixed-shape result (see ENDPOINTS), and
every response, /health included, says which instance served it: the `X-Served-By` header and
`served_by` in the JSON body carry RAG_INSTANCE (the container name, which the plan sets for
instances behind the load balancer), else the container's hostname. Requests are served
concurrently; `docker stop` (SIGTERM) stops accepting and lets the requests in flight finish.
"""
import ctypes
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8000"))
KIND = os.environ.get("RAG_SERVICE_KIND", "service")
INSTANCE = os.environ.get("RAG_INSTANCE") or socket.gethostname()
MACHINE_VIEW = "/etc/gpu-sim/machine.json"
CONTAINER_VIEW = "/etc/gpu-sim/container.json"  # the container's labels, from the toolkit hook
USAGE_FILE = "/tmp/gpu-sim/processes.d/service.json"  # the container hook's CONTAINER_PROCESSES
ESTIMATE_LABEL = "io.ragops.gpu-stack.vram-estimate-gb"  # the collection's label (its _container_options)
CONTEXT_MIB = 512  # a CUDA context, before the model is loaded
REQUEST_GPU_MS = 20  # GPU time one request costs: 50 requests/s keep a GPU busy
TICK_S = 0.5
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2's
STOPPING = threading.Event()


def _vector(text):
    """A deterministic unit-length stand-in embedding of text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    raw = [((digest[i % len(digest)] + i) % 251) / 250.0 - 0.5 for i in range(EMBEDDING_DIM)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


def completion(req):
    prompt = str(req.get("prompt", ""))
    return {"object": "text_completion", "model": os.environ.get("MODEL_ID"),
            "choices": [{"index": 0, "text": " (stand-in completion of %d characters)" % len(prompt),
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 6}}


def embedding(req):
    inputs = req.get("input", "")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return {"object": "list", "model": os.environ.get("MODEL_ID"),
            "data": [{"object": "embedding", "index": i, "embedding": _vector(str(t))} for i, t in enumerate(inputs)]}


def transcription(req):
    return {"text": "(stand-in transcription)", "language": req.get("language", "he"), "duration": 0.0}


def ocr(req):
    return {"pages": [{"page": 1, "text": "(stand-in OCR text)", "blocks": []}]}


# kind -> (path, handler): the one request endpoint each kind answers (GET with no body, or POST JSON)
ENDPOINTS = {
    "llm": ("/v1/completions", completion),
    "llm-gptoss": ("/v1/completions", completion),
    "embedding": ("/v1/embeddings", embedding),
    "whisper": ("/v1/audio/transcriptions", transcription),
    "ocr": ("/v1/ocr", ocr),
}


class GpuLoad(object):
    """What this service allocates on its GPUs and how busy it keeps them (see the module doc)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.util = 0.0
        self.allocated = None  # uuid -> MiB, once the model is loaded

    def served(self):
        with self.lock:
            self.requests += 1

    def plan(self, env):
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        if lib.nvmlInit_v2() != 0:
            return None
        sizes = {}
        try:
            n = ctypes.c_uint()
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(n)) != 0:
                return None
            for i in range(n.value):
                h = ctypes.c_void_p()
                buf = ctypes.create_string_buffer(96)
                mem = (ctypes.c_ulonglong * 3)()  # nvmlMemory_t: total, free, used
                if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)) == 0 and \
                        lib.nvmlDeviceGetUUID(h, buf, ctypes.c_uint(96)) == 0 and \
                        lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(mem)) == 0:
                    sizes[buf.value.decode()] = mem[0] // (1024 * 1024)
        finally:
            lib.nvmlShutdown()
        if not sizes:
            return None
        try:
            fraction = float(env.get("GPU_MEMORY_UTILIZATION") or 0)
        except ValueError:
            fraction = 0
        try:
            with open(CONTAINER_VIEW, encoding="utf-8") as fh:
                estimate = float(json.load(fh).get("labels", {}).get(ESTIMATE_LABEL) or 0)
        except (OSError, ValueError):
            estimate = 0
        if 0 < fraction <= 1:
            return dict((u, int(total * fraction)) for u, total in sizes.items())
        if estimate > 0:
            return dict((u, int(estimate * 1024 / len(sizes))) for u in sizes)
        return dict((u, CONTEXT_MIB) for u in sizes)

    def write(self):
        usage = dict((u, {"used_mib": mib, "utilization_gpu": int(round(self.util)),
                          "utilization_memory": int(round(self.util * 0.6))})
                     for u, mib in self.allocated.items())
        doc = {"pid": os.getpid(), "name": "python3", "gpus": sorted(self.allocated), "usage": usage}
        os.makedirs(os.path.dirname(USAGE_FILE), exist_ok=True)
        tmp = USAGE_FILE + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, USAGE_FILE)

    def run(self):
        env = dict(os.environ)
        if env.get("DEVICE", "").lower() == "cpu":
            return
        written = None
        while not STOPPING.is_set():
            if self.allocated is None and not model_problems(env)[0]:
                try:
                    self.allocated = self.plan(env)
                except OSError:
                    return  # no driver library: no GPU
            with self.lock:
                count, self.requests = self.requests, 0
            busy = min(100.0, count * REQUEST_GPU_MS / (TICK_S * 10.0))
            self.util = 0.7 * self.util + 0.3 * busy
            if self.util < 0.5:
                self.util = 0.0
            state = (int(round(self.util)), bool(self.allocated))
            if self.allocated and state != written:
                try:
                    self.write()
                    written = state
                except OSError:
                    return  # a read-only filesystem: nothing to show
            STOPPING.wait(TICK_S)


LOAD = GpuLoad()


def nvml_count():
    """(count, error) through libnvidia-ml.so.1, as CUDA would see the devices."""
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return 0, "libnvidia-ml.so.1 is not available in the container (no GPU was requested, or the " \
                  "NVIDIA container toolkit is not configured)"
    lib.nvmlErrorString.restype = ctypes.c_char_p
    rc = lib.nvmlInit_v2()
    if rc != 0:
        return 0, "nvmlInit failed: %s" % lib.nvmlErrorString(rc).decode()
    n = ctypes.c_uint()
    rc = lib.nvmlDeviceGetCount_v2(ctypes.byref(n))
    uuids = []
    for i in range(n.value if rc == 0 else 0):
        h = ctypes.c_void_p()
        buf = ctypes.create_string_buffer(96)
        if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)) == 0 and \
                lib.nvmlDeviceGetUUID(h, buf, ctypes.c_uint(96)) == 0:
            uuids.append(buf.value.decode())
    lib.nvmlShutdown()
    if rc != 0:
        return 0, "nvmlDeviceGetCount failed: %s" % lib.nvmlErrorString(rc).decode()
    return uuids, None


def gpu_problems(env):
    problems = []
    if env.get("DEVICE", "").lower() == "cpu":
        return problems, {"device": "cpu"}
    visible, err = nvml_count()
    info = {"nvidia_visible_devices": env.get("NVIDIA_VISIBLE_DEVICES"), "gpus_visible": visible or []}
    if err:
        return [err], info
    if not visible:
        return ["no GPU is visible in the container"], info
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    usable = len(visible)
    if cvd is not None:
        tokens = [t.strip() for t in cvd.split(",") if t.strip()]
        if not tokens:
            return ["CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU"], info
        good = 0
        for t in tokens:
            if t.isdigit():
                if int(t) < len(visible):
                    good += 1
                else:
                    problems.append(
                        "CUDA_VISIBLE_DEVICES=%s names ordinal %s, but the container sees %d GPU(s) numbered 0-%d "
                        "(inside a container GPUs are renumbered from 0; use container-local ordinals or drop it)"
                        % (cvd, t, len(visible), len(visible) - 1))
                    break  # CUDA stops at the first invalid ordinal
            elif t in visible:
                good += 1
            else:
                problems.append("CUDA_VISIBLE_DEVICES=%s names %s, which is not visible in the container" % (cvd, t))
                break
        usable = good
        if usable == 0 and not problems:
            problems.append("CUDA_VISIBLE_DEVICES=%s leaves no usable GPU" % cvd)
    info["gpus_usable"] = usable
    tp = env.get("TENSOR_PARALLEL_SIZE")
    if tp and tp.isdigit() and int(tp) > usable and usable > 0:
        problems.append("TENSOR_PARALLEL_SIZE=%s but only %d GPU(s) are usable" % (tp, usable))
    try:
        with open(MACHINE_VIEW, encoding="utf-8") as fh:
            fabric = json.load(fh).get("fabric", {})
    except (OSError, ValueError):
        fabric = {}
    if fabric.get("required") and fabric.get("state") != "completed":
        problems.append("the NVSwitch fabric is not initialised (nvidia-fabricmanager is not running): "
                        "CUDA fails with 'system not yet initialized'")
    return problems, info


def model_problems(env):
    repo = env.get("MODEL_ID") or env.get("MODEL_NAME")
    revision = env.get("MODEL_REVISION")
    if not repo:
        return [], {}
    home = env.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    base = os.path.join(env.get("HF_HUB_CACHE", os.path.join(home, "hub")), "models--" + repo.replace("/", "--"))
    info = {"model": repo, "revision": revision, "cache": base}
    if not os.path.isdir(base):
        return ["model %s is not staged: %s does not exist (mount the model cache read-only and set HF_HOME)"
                % (repo, base)], info
    if not revision:
        ref = os.path.join(base, "refs", "main")
        try:
            with open(ref, encoding="utf-8") as fh:
                revision = fh.read().strip()
        except OSError:
            return ["model %s: no MODEL_REVISION and no refs/main in the cache" % repo], info
    snap = os.path.join(base, "snapshots", revision)
    if not os.path.isdir(snap):
        return ["model %s revision %s is not staged (%s missing)" % (repo, revision, snap)], info
    files = []
    for root, _dirs, names in os.walk(snap):
        for name in names:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                return ["model file %s is not readable: %s" % (path, exc)], info
            files.append(path)
    if not files:
        return ["model %s revision %s has no files" % (repo, revision)], info
    info["files"] = len(files)
    return [], info


def health():
    env = dict(os.environ)
    problems = []
    if env.get("HF_HUB_OFFLINE") != "1":
        problems.append("HF_HUB_OFFLINE is not 1: the service would try to reach the Hugging Face Hub")
    mp, minfo = model_problems(env)
    gp, ginfo = gpu_problems(env)
    problems += mp + gp
    body = {"service": KIND, "status": "unhealthy" if problems else "ok", "reasons": problems}
    body.update(minfo)
    body.update(ginfo)
    return (503 if problems else 200), body


class Handler(BaseHTTPRequestHandler):
    server_version = "rag-standin/1.1"
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    timeout = 5  # an idle keep-alive connection is closed after this, so a stop never waits long
    disable_nagle_algorithm = True  # no 40 ms wait for a delayed ACK
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

    def _send(self, code, body):
        body = dict(body, served_by=INSTANCE)
        data = (json.dumps(body, indent=1) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", INSTANCE)
        if STOPPING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _request(self, method):
        path = self.path.split("?", 1)[0].rstrip("/")
        endpoint, handler = ENDPOINTS.get(KIND, (None, None))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path in ("/health", "/healthz", "/v1/health") and method == "GET":
            self._send(*health())
        elif path == "" and method == "GET":
            self._send(200, {"service": KIND, "endpoints": ["/health"] + ([endpoint] if endpoint else [])})
        elif endpoint and path == endpoint:
            try:
                req = json.loads(raw.decode("utf-8")) if raw else {}
            except ValueError:
                self._send(400, {"error": "the body is not JSON"})
                return
            LOAD.served()
            self._send(200, handler(req if isinstance(req, dict) else {}))
        else:
            self._send(404, {"error": "not found"})

    def do_GET(self):  # noqa: N802 (http.server API)
        self._request("GET")

    def do_POST(self):  # noqa: N802 (http.server API)
        self._request("POST")

    def log_request(self, code="-", size="-"):
        if not str(code).startswith("2"):  # errors only: a load test would flood the log
            super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def probe():
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % PORT, timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # noqa: BLE001 (any failure is unhealthy)
        print(exc)
        return 1


if __name__ == "__main__":
    if "--probe" in sys.argv:
        sys.exit(probe())
    code, body = health()
    print("starting %s (%s) on :%d, initial health %d: %s" % (KIND, INSTANCE, PORT, code,
                                                             "; ".join(body["reasons"]) or "ok"), flush=True)
    ThreadingHTTPServer.request_queue_size = 128  # the default 5 resets connections under concurrent load
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = False  # server_close() joins the requests in flight
    # PID 1 in a container ignores SIGTERM unless it handles it: on `docker stop`, stop accepting,
    # finish the requests in flight, exit.
    def stop(*_args):
        STOPPING.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=LOAD.run, daemon=True).start()
    server.serve_forever()
    server.server_close()
    print("stopped: the requests in flight were answered", flush=True)
