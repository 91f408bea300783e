#!/usr/bin/python3
"""A Python batch job that pushes its outcome to the Pushgateway.

Usage:
    push_job.py client [URL]   push with prometheus_client's push_to_gateway
    push_job.py http [URL]     push with plain urllib (no dependency at all)

URL defaults to $PUSHGATEWAY_URL, else http://localhost:9091. Any node of a
pushgateway-cluster will do. Both modes push the same metrics into the group
{job="pyjob", instance=<hostname>, mode=<mode>}.
"""

import base64
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

JOB = "pyjob"
HELP = {
    "pyjob_duration_seconds": "Duration of the last run in seconds.",
    "pyjob_last_success_timestamp_seconds": "Unix time of the last successful run.",
    "pyjob_records_processed": "Records processed by the last run.",
}


def do_work():
    """The job's real work; here a stand-in. Returns the records processed."""
    records = list(range(100))
    time.sleep(0.05)
    return len(records)


def with_retries(push, attempts=4):
    """Calls push() and retries on 503 (nothing was stored: retry later)
    and 504 (outcome unknown: a push is idempotent, so retrying is safe)."""
    for attempt in range(1, attempts + 1):
        try:
            return push()
        except urllib.error.HTTPError as e:
            if e.code not in (503, 504) or attempt == attempts:
                raise
            print(f"push answered {e.code}, retrying", file=sys.stderr)
            time.sleep(attempt)


def push_with_client(url):
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    duration = Gauge("pyjob_duration_seconds", HELP["pyjob_duration_seconds"], registry=registry)
    last_success = Gauge(
        "pyjob_last_success_timestamp_seconds",
        HELP["pyjob_last_success_timestamp_seconds"],
        registry=registry,
    )
    records = Gauge("pyjob_records_processed", HELP["pyjob_records_processed"], registry=registry)

    with duration.time():
        records.set(do_work())
    last_success.set_to_current_time()

    # push_to_gateway is a PUT: it replaces the whole group.
    with_retries(lambda: push_to_gateway(
        url,
        job=JOB,
        registry=registry,
        grouping_key={"instance": socket.gethostname(), "mode": "client"},
    ))


def label_path(name, value):
    """One /<name>/<value> URL segment; base64 for values with a slash."""
    if value == "" or "/" in value:
        return f"/{name}@base64/" + base64.urlsafe_b64encode(value.encode()).decode()
    return f"/{name}/" + urllib.parse.quote(value, safe="")


def push_with_http(url):
    start = time.time()
    n = do_work()
    end = time.time()
    values = {
        "pyjob_duration_seconds": end - start,
        "pyjob_last_success_timestamp_seconds": end,
        "pyjob_records_processed": n,
    }
    body = "".join(
        f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n{name} {value}\n"
        for name, value in values.items()
    ).encode()

    target = url.rstrip("/") + "/metrics" + label_path("job", JOB)
    target += label_path("instance", socket.gethostname()) + label_path("mode", "http")
    req = urllib.request.Request(
        target,
        data=body,
        method="PUT",  # PUT replaces the whole group; POST only the metrics sent
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )

    def push():
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    with_retries(push)


def main(argv):
    if len(argv) not in (2, 3) or argv[1] not in ("client", "http"):
        print(__doc__, file=sys.stderr)
        return 2
    url = argv[2] if len(argv) == 3 else os.environ.get("PUSHGATEWAY_URL", "http://localhost:9091")
    try:
        if argv[1] == "client":
            push_with_client(url)
        else:
            push_with_http(url)
    except urllib.error.HTTPError as e:
        print(f"push to {url} failed: {e.code} {e.read().decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"push to {url} failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
