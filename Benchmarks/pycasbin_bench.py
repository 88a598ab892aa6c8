#!/usr/bin/env python3
"""pycasbin on one model/policy/requests set written by PeonBench; prints one JSON line.

python3 pycasbin_bench.py MODEL.conf POLICY.csv REQUESTS.jsonl SECONDS
Decides the requests in order until SECONDS have passed (at least 20, at most all of them)."""
import json, logging, sys, time
import casbin

logging.disable(logging.CRITICAL)
model, policy, requests_path, budget = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
start = time.perf_counter()
enforcer = casbin.Enforcer(model, policy)
load = time.perf_counter() - start
requests = [json.loads(line) for line in open(requests_path)]
allowed = count = 0
start = time.perf_counter()
while count < len(requests):
    if enforcer.enforce(*requests[count]):
        allowed += 1
    count += 1
    if count >= 20 and time.perf_counter() - start > budget:
        break
elapsed = time.perf_counter() - start
print(json.dumps({"count": count, "allowed": allowed, "seconds": elapsed, "load": load,
                  "version": getattr(casbin, "__version__", "")}))
