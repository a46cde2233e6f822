#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: the server's user-space
work on one request, the same whatever else the machine is doing.

The harness (bench/run) measures CPU per request, which includes the kernel
and swings with a shared host's load. This counts only the server's own
instructions, exactly, so a cut of half a microsecond shows. It runs the
server under `valgrind --tool=callgrind`, sends warm-up requests, zeroes the
counters, sends N requests one after another on one keep-alive connection,
and divides the instructions counted by N.

    bench/instructions.py --server target/release/tollgate --workload W1
    bench/instructions.py --server /tmp/tollgate-before --workload W2,W6 --requests 3000

Workloads (as bench/run's, on a small database):
  W0  GET /healthz
  W1  client_credentials with client_secret_basic, over 100 clients
  W2  introspection of 200 tokens by a client with Basic
  W3  /authentication/token with a JSON secret_key, 20 API keys
  W4  introspection of the same 20 API keys
  W6  client_credentials over 5,000 clients with a 1 MiB cache: every
      request reads its client from SQLite (not the 1M rows of the harness)
"""

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(cid, secret):
    raw = f"{urllib.parse.quote(cid, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def post(conn, path, auth, body, kind="application/x-www-form-urlencoded"):
    headers = {"Content-Type": kind}
    if auth:
        headers["Authorization"] = auth
    conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {data[:200]!r}")
    return data


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
    return data


def seed(server, env, count):
    out = subprocess.run(
        [server, "client", "seed", "--count", str(count), "--show", str(count), "--json",
         "--scope", "read write", "--audience", "https://api.bench"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return [(c["client_id"], c["client_secret"]) for c in json.loads(out)["clients"]]


def total_instructions(out_file):
    with open(out_file) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit(f"no totals in {out_file}")


def measure(server, workload, requests, keep):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        env = dict(os.environ)
        env.update({
            "TOLLGATE_BIND": f"127.0.0.1:{port}",
            "TOLLGATE_DB": os.path.join(d, "tollgate.db"),
            "TOLLGATE_KEYS_DIR": os.path.join(d, "keys"),
            "TOLLGATE_ISSUER": "https://tollgate.bench",
            "TOLLGATE_IP_LIMIT_GET": "0",
            "TOLLGATE_IP_LIMIT_POST": "0",
            "TOLLGATE_AUTH_FAIL_IP_LIMIT": "1000000000",
            "TOLLGATE_WORKERS": "1",
            "RUST_LOG": "warn",
        })
        if workload == "W6":
            env["TOLLGATE_CACHE_MIB"] = "1"
        clients = seed(server, env, 5000 if workload == "W6" else 100)
        keys = [
            json.loads(subprocess.run(
                [server, "api-key", "create", "--client", clients[i % 5][0], "--json"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout)["secret_key"]
            for i in range(20 if workload in ("W3", "W4") else 0)
        ]
        introspector = json.loads(subprocess.run(
            [server, "client", "create", "--name", "introspector",
             "--scope", "tollgate:introspect", "--json"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout)
        out_file = os.path.join(d, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
             "--dump-line=no", server, "serve"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    get(conn, "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                sys.exit("the server did not start")
            auths = [basic(c, s) for c, s in clients]
            inspect = basic(introspector["client_id"], introspector["client_secret"])
            form = "grant_type=client_credentials"
            if workload == "W2":
                tokens = [
                    json.loads(post(conn, "/oauth/token", auths[i % 100], form))["access_token"]
                    for i in range(200)
                ]
                bodies = ["token=" + t for t in tokens]

            def one(i):
                if workload == "W0":
                    get(conn, "/healthz")
                elif workload == "W2":
                    post(conn, "/oauth/introspect", inspect, bodies[i % len(bodies)])
                elif workload == "W3":
                    post(conn, "/authentication/token", None,
                         json.dumps({"secret_key": keys[i % len(keys)]}), "application/json")
                elif workload == "W4":
                    post(conn, "/oauth/introspect", inspect, "token=" + keys[i % len(keys)])
                else:
                    post(conn, "/oauth/token", auths[i % len(auths)], form)

            for i in range(min(requests, 1000)):
                one(i)
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)],
                           check=True, capture_output=True)
            for i in range(requests):
                one(i)
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)],
                           check=True, capture_output=True)
            dumps = sorted(
                (os.path.join(d, f) for f in os.listdir(d) if f.startswith("callgrind.out.")),
                key=os.path.getmtime,
            )
            if keep:
                os.makedirs(keep, exist_ok=True)
                subprocess.run(["cp", dumps[-1], os.path.join(keep, f"callgrind.{workload}")],
                               check=True)
            return total_instructions(dumps[-1]) / requests
        finally:
            proc.terminate()
            proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="target/release/tollgate")
    p.add_argument("--workload", default="W0,W1,W2,W3,W4,W6")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--keep", metavar="DIR",
                   help="keep each workload's profile there, for callgrind_annotate")
    a = p.parse_args()
    for w in a.workload.split(","):
        per = measure(a.server, w, a.requests, a.keep)
        print(f"{w}: {per:,.0f} instructions per request ({a.requests} requests, {a.server})")


if __name__ == "__main__":
    main()
