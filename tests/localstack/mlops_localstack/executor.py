"""A LocalStack Lambda runtime executor without Docker.

Each execution environment is the function's `bootstrap` (a custom runtime: here the Rust
functions) run as a local process. The executor serves the Lambda Runtime API
(`/2018-06-01/runtime/...`) on a loopback port of its own, hands invocations to the process
through `invocation/next`, and returns what it posts back. It also takes the registration of
internal extensions (`/2020-01-01/extension/...`, as Lambda does for a function that wants the
SIGTERM sent before an environment ends) and stops a process with SIGTERM, then SIGKILL. Like Lambda it logs `START`, `END`
and `REPORT` lines, the first `REPORT` of an environment with its `Init Duration`: the time from
spawning the process to its first `invocation/next`.

Enabled with LAMBDA_RUNTIME_EXECUTOR=local-process.
"""

import json
import logging
import math
import os
import queue
import signal
import subprocess
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

LOG = logging.getLogger(__name__)
API = "/2018-06-01/runtime"
EXTENSION_API = "/2020-01-01/extension"
STARTUP_TIMEOUT_SECONDS = 30


class _RuntimeApi(BaseHTTPRequestHandler):
    """The Lambda Runtime API for one execution environment."""

    executor: "LocalProcessRuntimeExecutor"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        LOG.debug("runtime api %s: " + format, self.executor.id, *args)

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):  # noqa: N802 - the base class's name
        if self.path == f"{EXTENSION_API}/event/next":
            # Our extensions subscribe to no events: the call waits until the environment ends.
            self.executor._stopped.wait()
            deadline_ms = int((time.time() + 2) * 1000)
            return self._reply(200, json.dumps({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline_ms}).encode())
        if self.path != f"{API}/invocation/next":
            return self._reply(404)
        invocation = self.executor.next_invocation()
        if invocation is None:
            return self._reply(410)
        deadline_ms = int((time.time() + self.executor.timeout_seconds) * 1000)
        self._reply(
            200,
            invocation["payload"].encode(),
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": invocation["invoke-id"],
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation["invoked-function-arn"],
                "Lambda-Runtime-Trace-Id": invocation.get("trace-id") or "",
            },
        )

    def do_POST(self):  # noqa: N802 - the base class's name
        body = self._body()
        parts = self.path.split("/")
        if self.path.startswith(f"{API}/invocation/") and parts[-1] in ("response", "error"):
            self.executor.complete(parts[-2], body, is_error=parts[-1] == "error")
            return self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        if self.path == f"{EXTENSION_API}/register":
            function = self.executor.function_version.id.function_name
            body = json.dumps({"functionName": function, "functionVersion": "$LATEST", "handler": "bootstrap"}).encode()
            headers = {"Content-Type": "application/json", "Lambda-Extension-Identifier": f"{self.executor.id}-extension"}
            return self._reply(200, body, headers)
        if self.path.startswith(f"{EXTENSION_API}/") and self.path.endswith(("/init/error", "/exit/error")):
            return self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        if self.path == f"{API}/init/error":
            self.executor.init_failed(body)
            return self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        self._reply(404)


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.timeout_seconds = int(function_version.config.timeout or 3)
        self._process: subprocess.Popen | None = None
        self._server: ThreadingHTTPServer | None = None
        self._invocations: queue.Queue = queue.Queue()
        self._pending: dict[str, Future] = {}
        self._output: list[str] = []
        self._output_lock = threading.Lock()
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._spawned_at = 0.0
        self._init_ms: float | None = None
        self._init_reported = False
        self._init_error: bytes | None = None

    # The Runtime API side.

    def next_invocation(self) -> dict | None:
        if not self._ready.is_set():
            self._init_ms = (time.monotonic() - self._spawned_at) * 1000
            self._ready.set()
        while not self._stopped.is_set():
            try:
                return self._invocations.get(timeout=0.5)
            except queue.Empty:
                continue
        return None

    def complete(self, request_id: str, body: bytes, is_error: bool) -> None:
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result((body, is_error))

    def init_failed(self, body: bytes) -> None:
        self._init_error = body
        self._fail_pending(body)

    def _fail_pending(self, body: bytes) -> None:
        for request_id in list(self._pending):
            self.complete(request_id, body, is_error=True)

    def _pump(self) -> None:
        for raw in iter(self._process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._output_lock:
                self._output.append(line)
        code = self._process.wait()
        if not self._stopped.is_set():
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: unknown Error: Runtime exited with status {code}"}
            self._fail_pending(json.dumps(error).encode())

    # The RuntimeExecutor interface.

    def start(self, env_vars: dict[str, str]) -> None:
        code = self.function_version.config.code
        directory = Path(code.get_unzipped_code_location())
        bootstrap = directory / "bootstrap"
        if not bootstrap.exists():
            raise LambdaRuntimeException(f"{self.function_version.id.function_name}: the package has no bootstrap")
        bootstrap.chmod(0o755)
        handler = type("RuntimeApi", (_RuntimeApi,), {"executor": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"runtime-api-{self.id}", daemon=True).start()
        environment = {key: str(value) for key, value in env_vars.items()}
        edge = config.GATEWAY_LISTEN[0]
        environment.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._server.server_address[1]}",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{edge.port}",
                "LAMBDA_TASK_ROOT": str(directory),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            }
        )
        self._spawned_at = time.monotonic()
        self._process = subprocess.Popen(
            [str(bootstrap)], cwd=directory, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        threading.Thread(target=self._pump, name=f"lambda-output-{self.id}", daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._ready.wait(0.05):
            if self._process.poll() is not None or self._init_error is not None:
                raise LambdaRuntimeException(f"{self.function_version.id.function_name} failed to start: {self.get_logs()[-2000:]}")
            if time.monotonic() > deadline:
                raise LambdaRuntimeException(f"{self.function_version.id.function_name} did not ask for an invocation within {STARTUP_TIMEOUT_SECONDS}s")

    def stop(self) -> None:
        self._stopped.set()
        if self._process and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        future: Future = Future()
        self._pending[request_id] = future
        with self._output_lock:
            first_line = len(self._output)
        started = time.monotonic()
        self._invocations.put(payload)
        try:
            body, is_error = future.result(timeout=self.timeout_seconds + 5)
        except TimeoutError:
            self._pending.pop(request_id, None)
            body = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {self.timeout_seconds:.2f} seconds"}).encode()
            is_error = True
        duration_ms = (time.monotonic() - started) * 1000
        with self._output_lock:
            output = self._output[first_line:]
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms\t"
            f"Memory Size: {self.function_version.config.memory_size} MB\tMax Memory Used: {self._max_memory_mb()} MB"
        )
        if not self._init_reported and self._init_ms is not None:
            report += f"\tInit Duration: {self._init_ms:.2f} ms"
            self._init_reported = True
        name = self.function_version.id.function_name
        LOG.info("[lambda %s] %s", name, report.replace("\t", " "))
        logs = "\n".join([f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}", *output, f"END RequestId: {request_id}", report]) + "\n"
        return InvocationResult(request_id=request_id, payload=body, is_error=is_error, logs=logs)

    def _max_memory_mb(self) -> int:
        try:
            status = Path(f"/proc/{self._process.pid}/status").read_text()
            peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
            return math.ceil(peak_kb / 1024)
        except (OSError, StopIteration, ValueError):
            return 0

    def get_logs(self) -> str:
        with self._output_lock:
            return "\n".join(self._output)

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class LocalProcessExecutorPlugin(RuntimeExecutorPlugin):
    name = "local-process"

    def load(self, *args, **kwargs):
        return LocalProcessRuntimeExecutor
