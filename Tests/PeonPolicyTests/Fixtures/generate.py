#!/usr/bin/env python3
"""Records pycasbin's answers as differential fixtures for PeonPolicy.

Run:  pip install casbin==1.43.0 && python3 Tests/PeonPolicyTests/Fixtures/generate.py
Writes differential.json next to this script. The Swift tests read that file and assert that
PeonPolicy agrees with pycasbin on every request; they never run Python.

Each scenario is a model, a policy and requests. Requests are either listed by hand (edge cases)
or drawn from a seeded random generator over the scenario's vocabulary (so the file is stable).
Known, deliberate differences from pycasbin are kept out of the generated cases and listed in
docs/policy.md (regexMatch is an unanchored search, as in Go Casbin; pycasbin anchors it at the start).
"""
import itertools
import json
import logging
import os
import random
import tempfile

import casbin

logging.disable(logging.CRITICAL)
HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20261121)

ACL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""

RBAC = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""

RBAC_DOMAINS = """[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""

RBAC_DENY = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""

DENY_OVERRIDE = RBAC_DENY.replace(
    "some(where (p.eft == allow)) && !some(where (p.eft == deny))", "!some(where (p.eft == deny))")

PRIORITY = """[request_definition]
r = sub, obj, act

[policy_definition]
p = priority, sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = priority(p.eft) || deny

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""

PRIORITY_FILE_ORDER = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = priority(p.eft) || deny

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act
"""


def key_model(function):
    return f"""[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && {function}(r.obj, p.obj) && regexMatch(r.act, p.act)
"""


ABAC = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub_rule, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = eval(p.sub_rule) && r.obj == p.obj && r.act == p.act
"""

ABAC_ATTRIBUTES = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.Name == r.obj.Owner || (r.sub.Age >= 18 && r.sub.Age + 2 * 3 < 100 && r.act in ('read', 'list')) || \\
    (r.sub.Name == p.sub && r.obj.Name == p.obj && r.act == p.act)
"""

IP_MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = ipMatch(r.sub, p.sub) && globMatch(r.obj, p.obj) && r.act == p.act
"""


def run(name, model, policy, requests, explain=True):
    directory = tempfile.mkdtemp()
    with open(os.path.join(directory, "model.conf"), "w") as handle:
        handle.write(model)
    with open(os.path.join(directory, "policy.csv"), "w") as handle:
        handle.write(policy)
    enforcer = casbin.Enforcer(os.path.join(directory, "model.conf"), os.path.join(directory, "policy.csv"))
    cases = []
    for request in requests:
        allowed, rule = enforcer.enforce_ex(*request)
        case = {"request": request, "allowed": bool(allowed)}
        if explain and rule:
            case["rule"] = list(rule)
        cases.append(case)
    return {"name": name, "model": model, "policy": policy, "cases": cases}


def sample(vocabulary, count):
    everything = list(itertools.product(*vocabulary))
    if len(everything) <= 400:
        return [list(request) for request in everything]
    rng.shuffle(everything)
    return [list(request) for request in everything[:count]]


scenarios = []

# ACL, with a quoted field containing a comma and a comment.
acl_policy = """# who may do what
p, alice, data1, read
p, bob, data2, write
p, carol, data1, write

p, alice, data2, read
"""
scenarios.append(run("acl", ACL, acl_policy, sample(
    [["alice", "bob", "carol", "eve", "Alice"], ["data1", "data2", "data3"], ["read", "write"]], 40)))

# RBAC: a role hierarchy with a cycle, and a chain longer than the depth limit.
users = [f"u{i}" for i in range(12)]
rbac_policy = "\n".join(
    ["p, admin, data1, read", "p, admin, data1, write", "p, editor, data2, write", "p, viewer, data2, read",
     "p, u11, secret, read", "p, alice, data3, read",
     "g, alice, admin", "g, bob, editor", "g, editor, viewer", "g, viewer, editor", "g, carol, viewer",
     "g, admin, editor"]
    + [f"g, u{i}, u{i + 1}" for i in range(11)]) + "\n"
scenarios.append(run("rbac", RBAC, rbac_policy,
    sample([["alice", "bob", "carol", "dave", "admin", "editor", "viewer"], ["data1", "data2", "data3"], ["read", "write"]], 60)
    + [[user, "secret", "read"] for user in users]))

# RBAC with domains.
domain_policy = """p, admin, tenant1, data1, read
p, admin, tenant1, data1, write
p, admin, tenant2, data2, read
p, reader, tenant2, data2, read
p, writer, tenant2, data2, write
g, alice, admin, tenant1
g, alice, reader, tenant2
g, bob, admin, tenant2
g, bob, writer, tenant1
g, carol, writer, tenant2
g, writer, reader, tenant2
"""
scenarios.append(run("rbac-domains", RBAC_DOMAINS, domain_policy, sample(
    [["alice", "bob", "carol", "admin"], ["tenant1", "tenant2", "tenant3"], ["data1", "data2"], ["read", "write"]], 70)))

# Allow-and-deny, deny-override.
deny_policy = """p, alice, data1, read, allow
p, alice, data1, write, allow
p, data_group_admin, data2, read, allow
p, data_group_admin, data2, write, allow
p, bob, data2, write, deny
p, alice, data2, read, deny
p, staff, data3, read, allow
p, carol, data3, read, deny
p, dave, data3, read, maybe
g, bob, data_group_admin
g, alice, data_group_admin
g, carol, staff
g, dave, staff
"""
requests = sample([["alice", "bob", "carol", "dave", "erin"], ["data1", "data2", "data3"], ["read", "write"]], 60)
scenarios.append(run("allow-and-deny", RBAC_DENY, deny_policy, requests))
scenarios.append(run("deny-override", DENY_OVERRIDE, deny_policy, requests))

# Priority: out-of-order priorities are sorted; the first match decides.
priority_policy = """p, 10, data1_deny_group, data1, read, deny
p, 10, data1_deny_group, data1, write, deny
p, 10, data2_allow_group, data2, read, allow
p, 10, data2_allow_group, data2, write, allow
p, 1, alice, data1, write, allow
p, 1, alice, data1, read, allow
p, 1, bob, data2, read, deny
p, 5, carol, data2, write, deny
p, 3, carol, data1, read, allow
g, bob, data2_allow_group
g, alice, data1_deny_group
g, carol, data2_allow_group
g, carol, data1_deny_group
"""
scenarios.append(run("priority", PRIORITY, priority_policy, sample(
    [["alice", "bob", "carol", "dave"], ["data1", "data2"], ["read", "write"]], 32)))

file_order_policy = """p, alice, /data/*, read, deny
p, admins, /data/*, read, allow
p, admins, /data/public, write, allow
p, alice, /data/public, write, deny
g, alice, admins
g, bob, admins
"""
scenarios.append(run("priority-file-order", PRIORITY_FILE_ORDER, file_order_policy, sample(
    [["alice", "bob"], ["/data/x", "/data/public", "/other"], ["read", "write"]], 12)))

# keyMatch family.
key_policies = {
    "keyMatch": """p, alice, /alice_data/*, GET
p, alice, /alice_data/resource1, POST
p, bob, /bob_data/*, POST
p, cathy, /cathy_data, (GET)|(POST)
p, dave, *, GET
""",
    "keyMatch2": """p, alice, /alice_data/*, GET
p, alice, /alice_data/:resource, POST
p, bob, /bob_data/:id/files/:file, GET
p, cathy, /api/:version/users, (GET)|(POST)
p, dave, *, GET
p, erin, /pets.json, GET
""",
    "keyMatch3": """p, alice, /alice_data/{resource}, GET
p, alice, /alice_data/*, POST
p, bob, /proxy/{id}/target/{tid}, GET
p, cathy, /api/{version}/users, (GET)|(POST)
""",
    "keyMatch4": """p, alice, /parent/{id}/child/{id}, GET
p, alice, /parent/{id}/child/{other}, POST
p, bob, /a/{x}/b/{y}/c/{x}, GET
p, cathy, /files/*, GET
""",
    "keyMatch5": """p, alice, /alice_data/{resource}, GET
p, alice, /alice_data/*, POST
p, bob, /api/{version}/users, GET
p, cathy, /static/*, GET
""",
}
paths = ["/alice_data/resource1", "/alice_data/", "/alice_data/a/b", "/alice_data", "/bob_data/1", "/bob_data/1/files/x",
         "/bob_data/1/files/", "/cathy_data", "/api/v1/users", "/api/v1/v2/users", "/api//users", "/pets.json", "/petsxjson",
         "/parent/1/child/1", "/parent/1/child/2", "/a/1/b/2/c/1", "/a/1/b/2/c/2", "/files/x/y", "/files", "/proxy/7/target/8",
         "/alice_data/resource1?x=1", "/api/v2/users?admin=true", "/static/css/site.css", "anything"]
for function, policy in key_policies.items():
    scenarios.append(run(function, key_model(function), policy, sample(
        [["alice", "bob", "cathy", "dave", "erin"], paths, ["GET", "POST", "DELETE"]], 400)))

# ipMatch (IPv4, IPv6, CIDR) and globMatch (path.Match).
ip_policy = """p, 192.168.2.0/24, /data/*, read
p, 10.0.0.1, /data/*.txt, write
p, 2001:db8::/32, /v6/?, read
p, ::1, /local/[a-c]*, read
p, 172.16.0.0/12, /x/*/y, read
"""
scenarios.append(run("ipMatch-globMatch", IP_MODEL, ip_policy, sample(
    [["192.168.2.1", "192.168.3.1", "10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db9::1", "::1", "172.20.1.1", "172.32.0.1"],
     ["/data/a", "/data/a/b", "/data/x.txt", "/data/.txt", "/v6/a", "/v6/ab", "/local/apple", "/local/zebra", "/x/q/y", "/x/q/r/y"],
     ["read", "write"]], 400)))

# eval() with ABAC rules stored in the policy.
abac_policy = """p, r.sub.Age > 18, /data1, read
p, r.sub.Age < 60 && r.sub.Dept == 'eng', /data2, write
p, r.sub.Name == 'alice' || r.sub.Age == 30, /data3, read
"""
subjects = [{"Name": "alice", "Age": 16, "Dept": "eng"}, {"Name": "bob", "Age": 30, "Dept": "ops"},
            {"Name": "carol", "Age": 61, "Dept": "eng"}, {"Name": "dave", "Age": 19, "Dept": "eng"}]


class Attributes:
    def __init__(self, values):
        self.__dict__.update(values)


def run_abac(name, model, policy, requests):
    directory = tempfile.mkdtemp()
    with open(os.path.join(directory, "model.conf"), "w") as handle:
        handle.write(model)
    with open(os.path.join(directory, "policy.csv"), "w") as handle:
        handle.write(policy)
    enforcer = casbin.Enforcer(os.path.join(directory, "model.conf"), os.path.join(directory, "policy.csv"))
    cases = []
    for request in requests:
        values = [Attributes(value) if isinstance(value, dict) else value for value in request]
        allowed, rule = enforcer.enforce_ex(*values)
        case = {"request": request, "allowed": bool(allowed)}
        if rule:
            case["rule"] = list(rule)
        cases.append(case)
    return {"name": name, "model": model, "policy": policy, "cases": cases}


scenarios.append(run_abac("abac-eval", ABAC, abac_policy, sample(
    [subjects, ["/data1", "/data2", "/data3"], ["read", "write"]], 24)))

objects = [{"Name": "doc1", "Owner": "alice"}, {"Name": "doc2", "Owner": "bob"}, {"Name": "doc3", "Owner": "zed"}]
attribute_policy = """p, carol, doc3, write
p, dave, doc2, delete
"""
scenarios.append(run_abac("abac-attributes", ABAC_ATTRIBUTES, attribute_policy, sample(
    [subjects, objects, ["read", "write", "delete"]], 36)))

# Random role graphs (with cycles and chains longer than the depth limit) under every effect,
# with and without domains: exercises the role index and the memoized role closure.
EFFECTS = {
    "allow": "some(where (p.eft == allow))",
    "deny-override": "!some(where (p.eft == deny))",
    "allow-and-deny": "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "priority": "priority(p.eft) || deny",
}
for effect_name, effect in EFFECTS.items():
    for with_domains in (False, True):
        names = [f"n{i}" for i in range(24)]
        domains = ["d1", "d2"] if with_domains else [None]
        lines = []
        for _ in range(30):
            sub = rng.choice(names)
            dom = rng.choice(domains)
            obj = rng.choice(["o1", "o2", "o3"])
            act = rng.choice(["read", "write"])
            eft = rng.choice(["allow", "allow", "deny"])
            lines.append(", ".join(["p", sub] + ([dom] if dom else []) + [obj, act, eft]))
        for _ in range(40):
            a, b = rng.sample(names, 2)
            dom = rng.choice(domains)
            lines.append(", ".join(["g", a, b] + ([dom] if dom else [])))
        for i in range(12):  # a long chain n0 -> n1 -> ... -> n12
            lines.append(", ".join(["g", f"n{i}", f"n{i + 1}"] + (["d1"] if with_domains else [])))
        request = "sub, dom, obj, act" if with_domains else "sub, obj, act"
        matcher = ("g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act" if with_domains
                   else "g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act")
        model_text = f"""[request_definition]
r = {request}

[policy_definition]
p = {request}, eft

[role_definition]
g = {"_, _, _" if with_domains else "_, _"}

[policy_effect]
e = {effect}

[matchers]
m = {matcher}
"""
        vocabulary = [names] + ([domains] if with_domains else []) + [["o1", "o2", "o3"], ["read", "write"]]
        scenarios.append(run(f"random-roles-{effect_name}{'-domains' if with_domains else ''}", model_text,
                             "\n".join(lines) + "\n", sample(vocabulary, 300)))

with open(os.path.join(HERE, "differential.json"), "w") as handle:
    json.dump({"generator": "pycasbin " + getattr(casbin, "__version__", "1.43.0"), "scenarios": scenarios}, handle, indent=1)
print(sum(len(s["cases"]) for s in scenarios), "cases in", len(scenarios), "scenarios")
