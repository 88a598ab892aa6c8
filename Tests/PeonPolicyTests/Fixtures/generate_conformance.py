#!/usr/bin/env python3
"""Records pycasbin 2.8.0's answers for the Casbin features peon-wasm added for conformance.

Run:  pip install pycasbin==2.8.0 && python3 Tests/PeonPolicyTests/Fixtures/generate_conformance.py
Writes conformance.json next to this script, in the same format as differential.json (the Swift
tests read it and never run Python). The models and policies are our own, written in the shapes of
Casbin's example models (scripts/casbin_conformance.py measures agreement on the examples
themselves): doublestar globMatch with `[!...]` negation, the `p_eft` spelling, `in [...]`,
trailing `#` comments on the effect, role and matcher lines, temporal role links
`g = _, _, (_, _)` and `g = _, _, _, (_, _)`, `subjectPriority(p.eft) || deny` with and without
domains, and pattern roles declared in a `[role_matching]` section (names and domains).

Brace alternatives (`{a,b}`) cannot be written in a pycasbin policy line (it splits fields at every
comma), so the Swift tests check them against Go's doublestar directly. pycasbin 2.8 also cannot
mix a temporal `g` with a plain `g2` in one model (it answers false throughout Go's
rbac_with_different_types_of_roles example), so that shape is a Swift unit test too. Cases where pycasbin and
Go Casbin disagree are left out and listed in the report: paths with a
component starting with `.`, an empty component (`//`) or a trailing `/` (pycasbin's wcmatch treats
them specially, Go's doublestar does not), and `;` comments after a value (Go accepts them, pycasbin does not).
A rule is recorded only for allowed requests: pycasbin 2.8 also names a rule for some denials,
where peon-wasm names none.
"""
import itertools
import json
import logging
import os
import random
import tempfile

import casbin
from casbin import util

logging.disable(logging.CRITICAL)
HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20261130)


def enforcer_for(model, policy):
    directory = tempfile.mkdtemp()
    with open(os.path.join(directory, "model.conf"), "w") as handle:
        handle.write(model)
    with open(os.path.join(directory, "policy.csv"), "w") as handle:
        handle.write(policy)
    return casbin.Enforcer(os.path.join(directory, "model.conf"), os.path.join(directory, "policy.csv"))


def with_time_windows(enforcer, domain_roles=()):
    """What Go Casbin's temporal-role tests do in code: every link of a `(_, _)` role type is
    checked with TimeMatchFunc."""
    for ptype, assertion in enforcer.get_model().model.get("g", {}).items():
        if "(_, _)" not in assertion.value:
            continue
        for rule in assertion.policy:
            if ptype in domain_roles:
                enforcer.add_named_domain_link_condition_func(ptype, rule[0], rule[1], rule[2], util.time_match_func)
            else:
                enforcer.add_named_link_condition_func(ptype, rule[0], rule[1], util.time_match_func)
    enforcer.build_role_links()
    return enforcer


def run(name, model, policy, requests, setup=lambda enforcer: enforcer):
    enforcer = setup(enforcer_for(model, policy))
    cases = []
    for request in requests:
        allowed, rule = enforcer.enforce_ex(*request)
        case = {"request": request, "allowed": bool(allowed)}
        if allowed and rule:
            case["rule"] = list(rule)
        cases.append(case)
    return {"name": name, "model": model, "policy": policy, "cases": cases}


def sample(vocabulary, count):
    everything = list(itertools.product(*vocabulary))
    if len(everything) <= count:
        return [list(request) for request in everything]
    rng.shuffle(everything)
    return [list(request) for request in everything[:count]]


scenarios = []

GLOB = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && globMatch(r.obj, p.obj) && r.act == p.act
"""
glob_policy = """p, ann, /files/**, read
p, ann, /tree/**/leaf, read
p, ann, **/secret, write
p, bo, /bo_data/[!0-9]*, write
p, bo, /bo_data/[^a-m]?, read
p, bo, /img/*.png, read
p, cy, /d/*/e, read
p, cy, /cfg/??, write
p, cy, /lib/[ab]?/x, read
p, dee, /**, read
p, dee, /one**, write
"""
glob_paths = ["/files", "/files/a", "/files/a/b/c", "/filesx", "/tree/leaf", "/tree/a/leaf", "/tree/a/b/leaf", "/tree/leafy",
              "secret", "a/secret", "/x/y/secret", "/secretx", "/bo_data/x1", "/bo_data/1x", "/bo_data/!1", "/bo_data/n7",
              "/bo_data/b7", "/bo_data/a/b", "/img/a.png", "/img/a.gif", "/img/x/a.jpg", "/d/q/e", "/d/q/r/e",
              "/cfg/ab", "/cfg/abc", "/cfg/a/", "/lib/a/x", "/lib/bc/x", "/lib/bd/x", "/lib/b/x", "/lib/be/x", "/one", "/onetwo",
              "/one/two", "/", "/any/thing"]
scenarios.append(run("globMatch-doublestar", GLOB, glob_policy, sample(
    [["ann", "bo", "cy", "dee"], glob_paths, ["read", "write"]], 400)))

P_EFT = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p_eft == allow)) && !some(where (p_eft == deny))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
p_eft_policy = """p, alice, data1, read, allow
p, staff, data2, read, allow
p, bob, data2, read, deny
p, staff, data2, write, allow
g, alice, staff
g, bob, staff
"""
scenarios.append(run("p_eft-spelling", P_EFT, p_eft_policy, sample(
    [["alice", "bob", "carl"], ["data1", "data2"], ["read", "write"]], 100)))

IN_BRACKETS = """# A model with comments after values.
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _   # users to roles

[policy_effect]
e = some(where (p.eft == allow)) # allow-override

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act || r.obj in ['public', 'lobby'] && r.act in ['read'] # anyone reads these
"""
in_policy = """p, alice, data1, read
p, editors, data2, write
g, bob, editors
"""
scenarios.append(run("in-brackets-and-comments", IN_BRACKETS, in_policy, sample(
    [["alice", "bob", "zed"], ["data1", "data2", "public", "lobby", "Public"], ["read", "write"]], 100)))

TEMPORAL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _, (_, _)

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
temporal_policy = """p, alice, own, read
p, r_past, d_past, read
p, r_now, d_now, read
p, r_future, d_future, read
p, r_open, d_open, read
p, r_open_end, d_open_end, read
p, r_open_start, d_open_start, read
p, r_ended, d_ended, read
p, r_chain, d_chain, read
p, r_mid, d_mid, read

g, alice, r_past, 2001-01-01 00:00:00, 2002-06-30 12:00:00
g, alice, r_now, 2001-01-01 00:00:00, 2999-12-30 23:59:59
g, alice, r_future, 2900-01-01 00:00:00, 2999-12-30 00:00:00
g, alice, r_open, _, _
g, alice, r_open_end, 2001-01-01 00:00:00, _
g, alice, r_open_start, _, 2999-01-01 00:00:00
g, alice, r_ended, _, 2001-01-01 00:00:00
g, alice, r_mid, _, _
g, r_mid, r_chain, 2001-01-01 00:00:00, 2999-01-01 00:00:00
g, bob, r_past, _, _
g, bob, r_future, 2900-02-28 00:00:00, _
g, carl, r_mid, 2900-01-01 00:00:00, _
"""
objects = ["own", "d_past", "d_now", "d_future", "d_open", "d_open_end", "d_open_start", "d_ended", "d_chain", "d_mid"]
scenarios.append(run("temporal-roles", TEMPORAL, temporal_policy, sample(
    [["alice", "bob", "carl", "r_mid"], objects, ["read"]], 100), setup=with_time_windows))

TEMPORAL_DOMAINS = """[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _, (_, _)

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""
temporal_domain_policy = """p, admin, t1, data, read
p, admin, t1, data, write
p, admin, t2, data, read
p, reader, t2, data, read

g, alice, admin, t1, 2001-01-01 00:00:00, 2999-01-01 00:00:00
g, alice, admin, t2, 2001-01-01 00:00:00, 2002-01-01 00:00:00
g, alice, reader, t2, _, _
g, bob, admin, t2, 2990-01-01 00:00:00, _
g, bob, admin, t1, _, 2999-12-31 23:59:59
g, carl, admin, t1, _, 2000-01-01 00:00:00
"""
scenarios.append(run("temporal-roles-domains", TEMPORAL_DOMAINS, temporal_domain_policy, sample(
    [["alice", "bob", "carl", "admin"], ["t1", "t2", "t3"], ["data"], ["read", "write"]], 100),
    setup=lambda enforcer: with_time_windows(enforcer, domain_roles=("g",))))

SUBJECT_PRIORITY = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = subjectPriority(p.eft) || deny

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
subject_priority_policy = """p, root, doc, read, deny
p, root, doc, write, allow
p, admin, doc, read, allow
p, editor, doc, read, deny
p, editor, doc, write, deny
p, jane, doc, read, allow
p, lead, doc, write, allow
g, admin, root
g, editor, admin
g, jane, editor
g, alice, admin
g, bob, root
g, carl, editor
g, carl, lead
"""
scenarios.append(run("subject-priority", SUBJECT_PRIORITY, subject_priority_policy, sample(
    [["root", "admin", "editor", "lead", "jane", "alice", "bob", "carl", "zed"], ["doc"], ["read", "write"]], 100)))

SUBJECT_PRIORITY_DOMAINS = """[request_definition]
r = sub, obj, dom, act

[policy_definition]
p = sub, obj, dom, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = subjectPriority(p.eft) || deny

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""
subject_priority_domain_policy = """p, admin, data, t1, read, deny
p, alice, data, t1, read, allow
p, admin, data, t2, read, allow
p, alice, data, t2, read, deny
p, staff, data, t2, read, allow
g, alice, admin, t1
g, bob, admin, t1
g, alice, staff, t2
g, staff, admin, t2
"""
scenarios.append(run("subject-priority-domains", SUBJECT_PRIORITY_DOMAINS, subject_priority_domain_policy, sample(
    [["alice", "bob", "admin", "staff"], ["data"], ["t1", "t2"], ["read"]], 100)))

# Pattern roles: the `[role_matching]` section declares what Go Casbin registers from code with
# AddNamedMatchingFunc / AddNamedDomainMatchingFunc. pycasbin ignores the section; the setup
# registers the same functions, as Casbin's own tests do.
PATTERN_NAMES = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _
g2 = _, _

[role_matching]
g = keyMatch2
g2 = keyMatch2

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && g2(r.obj, p.obj) && regexMatch(r.act, p.act)
"""
pattern_names_policy = """p, ann, /pen/1, ^GET$
p, doc_admin, doc_group, ^GET$
p, pen_admin, pen_group, ^GET$
p, /doc/admin/:id, pen9_group, ^GET$
p, /doc/lead/2, pen9_group, ^POST$
g, /doc/user/:id, /doc/admin/1
g, /doc/user/:id, /doc/lead/2
g, ann, doc_admin
g, ben, pen_admin
g, cat, /doc/1/2/3
g, cat, pen_admin
g2, /doc/:id, doc_group
g2, /pen/:id, pen_group
g2, /pen9/:id, pen9_group
"""
scenarios.append(run("pattern-role-names", PATTERN_NAMES, pattern_names_policy, sample(
    [["ann", "ben", "cat", "/doc/user/5", "/doc/admin/1", "/doc/x/1", "doc_admin"],
     ["/doc/1", "/doc/2/3", "/pen/1", "/pen/x", "/pen9/7", "doc_group", "/other/1"], ["GET", "POST"]], 120),
    setup=lambda enforcer: (enforcer.add_named_matching_func("g", util.key_match2),
                            enforcer.add_named_matching_func("g2", util.key_match2), enforcer)[-1]))

PATTERN_DOMAINS = """[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[role_matching]
g = _, keyMatch2

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && keyMatch2(r.dom, p.dom) && r.obj == p.obj && r.act == p.act
"""
pattern_domains_policy = """p, admin, org1, data1, read
p, admin, org2, data2, write
p, user, org.*, data3, read
p, user, org.1, data4, read
g, ann, admin, *
g, ben, admin, org2
g, cat, user, org.*
g, dan, user, /team/:id
"""
scenarios.append(run("pattern-role-domains", PATTERN_DOMAINS, pattern_domains_policy, sample(
    [["ann", "ben", "cat", "dan"], ["org1", "org2", "org.1", "org.x", "/team/7"], ["data1", "data2", "data3", "data4"],
     ["read", "write"]], 160),
    setup=lambda enforcer: (enforcer.add_named_domain_matching_func("g", util.key_match2), enforcer)[-1]))

PATTERN_GLOB = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, role

[role_definition]
g = _, _
g2 = _, _

[role_matching]
g2 = globMatch

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g2(r.act, p.role) && (g(r.sub, p.sub) || p.sub == '*') && keyMatch(r.obj, p.obj)
"""
pattern_glob_policy = """p, root, *, owner
p, *, /public/*, viewer
g, admin@host, root
g2, *.read, viewer
g2, *.read, editor
g2, *.update, editor
g2, *.*, owner
"""
scenarios.append(run("pattern-role-glob", PATTERN_GLOB, pattern_glob_policy, sample(
    [["admin@host", "root", "guest"], ["/public/a", "/private/b"], ["doc.read", "doc.update", "doc.delete", "read", "doc.read.x"]], 60),
    setup=lambda enforcer: (enforcer.add_named_matching_func("g2", util.glob_match), enforcer)[-1]))

with open(os.path.join(HERE, "conformance.json"), "w") as handle:
    json.dump({"generator": "pycasbin " + getattr(casbin, "__version__", "2.8.0"), "scenarios": scenarios}, handle, indent=1)
print(sum(len(s["cases"]) for s in scenarios), "cases in", len(scenarios), "scenarios")
