#!/usr/bin/env python3
"""pycasbin on the files PolicyBench wrote: python3 bench.py OUTPUT_DIR [COUNT]"""
import json, logging, sys, time
import casbin

logging.disable(logging.CRITICAL)
directory = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
start = time.perf_counter()
enforcer = casbin.Enforcer(f"{directory}/rbac.conf", f"{directory}/rbac.csv")
load = time.perf_counter() - start
requests = [json.loads(line) for line in open(f"{directory}/requests.jsonl")][:count]
start = time.perf_counter()
allowed = sum(1 for request in requests if enforcer.enforce(*request))
elapsed = time.perf_counter() - start
print(f"pycasbin {casbin.__version__ if hasattr(casbin, '__version__') else ''}: load {load:.2f}s, {count} requests in {elapsed:.2f}s "
      f"({count / elapsed:.0f} req/s, {elapsed / count * 1e6:.0f} µs/req), {allowed} allowed")
