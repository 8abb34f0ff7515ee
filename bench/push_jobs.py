"""Writes Redis commands (RESP, for `redis-cli --pipe`) that push JOBS jobs
of CLASS (OrderCreateJob, NoopJob or WebhookDeliveryJob) to the default queue the way
Sidekiq's client does. Used by scripts/bench and scripts/profile.

Usage: python3 bench/push_jobs.py JOBS CLASS | redis-cli -p PORT --pipe
"""
import json
import os
import sys
import time


def resp(*args):
    out = "*%d\r\n" % len(args)
    for a in args:
        b = a.encode()
        out += "$%d\r\n%s\r\n" % (len(b), a)
    return out


def arguments(job_class, i):
    if job_class == "NoopJob":
        return []
    if job_class == "WebhookDeliveryJob":
        # Endpoint 1, and the event as ActiveJob serializes a symbol-keyed hash.
        return [1, {"type": "order.paid", "data": {"order_id": i}, "_aj_symbol_keys": ["type", "data"]}]
    return [{"id": i, "email": "buyer@example.com", "name": "Ann",
             "items": [{"name": "Tea", "quantity": 2, "price": "3.50"}], "total": "7.00"}]


def main():
    jobs, job_class = int(sys.argv[1]), sys.argv[2]
    now = time.time()
    sys.stdout.write(resp("SADD", "queues", "default"))
    for i in range(jobs):
        args = arguments(job_class, i)
        job = {"class": job_class, "queue": "default", "retry": True, "jid": os.urandom(12).hex(),
               "created_at": now, "enqueued_at": now, "args": args}
        sys.stdout.write(resp("LPUSH", "queue:default", json.dumps(job)))


main()
