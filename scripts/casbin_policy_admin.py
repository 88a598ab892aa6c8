#!/usr/bin/env python3
"""Edit a peon-wasm fleet policy the way any Casbin deployment does: pycasbin with
casbin_sqlalchemy_adapter (the `casbin_rule` table) and casbin-postgresql-watcher (NOTIFY on
`casbin_role_watcher`, which running `peon-wasm run --policy postgresql://...` LISTENs on).

    casbin_policy_admin.py URL add|remove SUB OBJ ACT [ARGS]   # a `p` line (ARGS default "*")
    casbin_policy_admin.py URL link|unlink MEMBER ROLE         # a `g` line
    casbin_policy_admin.py URL list

URL: postgresql://USER[:PASSWORD]@HOST:PORT/DB. Needs: pip install casbin_sqlalchemy_adapter
casbin-postgresql-watcher psycopg2-binary.
"""
import os
import sys
import tempfile
from urllib.parse import urlparse

import casbin
import casbin_sqlalchemy_adapter
from postgresql_watcher import PostgresqlWatcher

# The request and policy shape of peon-wasm's built-in model (policies/model.conf). pycasbin only
# stores lines here; peon-wasm decides with its own model.
MODEL = """
[request_definition]
r = sub, obj, act, args
[policy_definition]
p = sub, obj, act, args
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    url, command, rest = argv[1], argv[2], argv[3:]
    parts = urlparse(url)
    adapter = casbin_sqlalchemy_adapter.Adapter(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as model:
        model.write(MODEL)
    try:
        enforcer = casbin.Enforcer(model.name, adapter)
    finally:
        os.unlink(model.name)
    watcher = PostgresqlWatcher(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                                password=parts.password or "", dbname=parts.path.lstrip("/") or parts.username,
                                start_listening=False)
    enforcer.set_watcher(watcher)
    if command == "add" and len(rest) in (3, 4):
        changed = enforcer.add_policy(*rest[:3], rest[3] if len(rest) == 4 else "*")
    elif command == "remove" and len(rest) in (3, 4):
        changed = enforcer.remove_policy(*rest[:3], rest[3] if len(rest) == 4 else "*")
    elif command == "link" and len(rest) == 2:
        changed = enforcer.add_grouping_policy(*rest)
    elif command == "unlink" and len(rest) == 2:
        changed = enforcer.remove_grouping_policy(*rest)
    elif command == "list":
        for line in enforcer.get_policy():
            print("p, " + ", ".join(line))
        for line in enforcer.get_grouping_policy():
            print("g, " + ", ".join(line))
        return 0
    else:
        print(__doc__, file=sys.stderr)
        return 64
    # pycasbin itself calls watcher.update() after each change: that NOTIFY is what peon-wasm hears.
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
