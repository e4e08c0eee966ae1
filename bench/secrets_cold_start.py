"""Cold-start cost of reading a secret: Powertools Parameters (boto3) vs the AWS Parameters and
Secrets Lambda extension, as far as it can be measured off AWS.

    .venv/bin/python bench/secrets_cold_start.py [--runs 9]

Each run is a fresh interpreter (a cold start) that reads one secret and then reads it again
(warm, from the cache):

- powertools: import boto3 + Powertools Parameters, create the Secrets Manager client, one
  GetSecretValue (SigV4-signed HTTPS in AWS; here plain HTTP to a loopback stand-in that
  answers like Secrets Manager), then a cached read.
- extension: what the function does with the extension: import urllib, one GET to
  localhost:2773/secretsmanager/get with the session token header (here a loopback stand-in
  that answers like the extension), then the function's own cache.

Measured: the function-side cost of each path (imports, client creation, request signing and
parsing, the loopback round trip). Not measurable here: the extension's own start-up (it is a
separate process Lambda starts during INIT, which adds to the init duration and memory), its
call to Secrets Manager (the same network call Powertools makes, through the same VPC
endpoint), Lambda's arm64 CPUs (this machine's CPU differs), and SnapStart (with it,
`taskline.snapstart.warm_up` moves the boto3/Parameters import before the snapshot, leaving
client creation and the first call after a restore).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskline/jwt-AbCdEf"
SECRET = json.dumps({"current": "k" * 64, "previous": []})
ANSWER = json.dumps(
    {
        "ARN": SECRET_ARN,
        "Name": "taskline/jwt",
        "VersionId": "01234567-89ab-cdef-0123-456789abcdef",
        "SecretString": SECRET,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    }
).encode()


class StandIn(BaseHTTPRequestHandler):
    """Answers GetSecretValue (POST, as Secrets Manager) and GET /secretsmanager/get (as the
    extension) with the same document."""

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def do_GET(self) -> None:
        if self.headers.get("X-Aws-Parameters-Secrets-Token") != "session-token":
            self.send_response(401)
            self.end_headers()
            return
        self._answer()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


POWERTOOLS = """
import json, os, time
t0 = time.perf_counter()
import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config
t1 = time.perf_counter()
# As taskline.secret_store does, plus the stand-in's address.
config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})
client = boto3.session.Session().client(
    "secretsmanager", endpoint_url=os.environ["ENDPOINT"], config=config)
provider = SecretsProvider(boto3_client=client)
t2 = time.perf_counter()
first = json.loads(provider.get(os.environ["ARN"], max_age=300))
t3 = time.perf_counter()
again = json.loads(provider.get(os.environ["ARN"], max_age=300))
t4 = time.perf_counter()
assert first == again
print(json.dumps({"import": t1 - t0, "client": t2 - t1, "first_read": t3 - t2,
                  "cached_read": t4 - t3}))
"""

EXTENSION = """
import json, os, time
t0 = time.perf_counter()
import urllib.parse, urllib.request
t1 = time.perf_counter()
cache = {}
def read(arn):
    if arn in cache:
        return cache[arn]
    url = os.environ["ENDPOINT"] + "/secretsmanager/get?secretId=" + urllib.parse.quote(arn)
    request = urllib.request.Request(url, headers={
        "X-Aws-Parameters-Secrets-Token": os.environ["AWS_SESSION_TOKEN"]})
    with urllib.request.urlopen(request, timeout=3) as response:
        cache[arn] = json.loads(json.loads(response.read())["SecretString"])
    return cache[arn]
t2 = time.perf_counter()
first = read(os.environ["ARN"])
t3 = time.perf_counter()
again = read(os.environ["ARN"])
t4 = time.perf_counter()
assert first == again
print(json.dumps({"import": t1 - t0, "client": t2 - t1, "first_read": t3 - t2,
                  "cached_read": t4 - t3}))
"""


def run(script: str, endpoint: str) -> dict[str, float]:
    env = {
        **os.environ,
        "ENDPOINT": endpoint,
        "ARN": SECRET_ARN,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "session-token",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    measured: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="cold starts per variant (1-50)")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 50))
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    results: dict[str, dict[str, float]] = {}
    try:
        for name, script in (("powertools", POWERTOOLS), ("extension", EXTENSION)):
            samples = [run(script, endpoint) for _ in range(runs)]
            results[name] = {
                key: statistics.median(sample[key] for sample in samples) * 1000
                for key in samples[0]
            }
            results[name]["total"] = sum(
                results[name][k] for k in ("import", "client", "first_read")
            )
    finally:
        server.shutdown()
    print(f"median of {runs} cold starts, milliseconds (Python {sys.version.split()[0]})")
    print(f"{'':12}{'import':>10}{'client':>10}{'1st read':>10}{'cached':>10}{'cold total':>12}")
    for name, row in results.items():
        print(
            f"{name:12}{row['import']:10.1f}{row['client']:10.1f}{row['first_read']:10.1f}"
            f"{row['cached_read']:10.3f}{row['total']:12.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs, "milliseconds": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
