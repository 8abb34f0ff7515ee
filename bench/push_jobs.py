"""Writes Redis commands (RESP, for `redis-cli --pipe`) that push JOBS jobs
of CLASS (OrderCreateJob or NoopJob) to the default queue the way
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


def main():
    jobs, job_class = int(sys.argv[1]), sys.argv[2]
    now = time.time()
    sys.stdout.write(resp("SADD", "queues", "default"))
    for i in range(jobs):
        args = [] if job_class == "NoopJob" else [{
            "id": i, "email": "buyer@example.com", "name": "Ann",
            "items": [{"name": "Tea", "quantity": 2, "price": "3.50"}], "total": "7.00"}]
        job = {"class": job_class, "queue": "default", "retry": True, "jid": os.urandom(12).hex(),
               "created_at": now, "enqueued_at": now, "args": args}
        sys.stdout.write(resp("LPUSH", "queue:default", json.dumps(job)))


main()
