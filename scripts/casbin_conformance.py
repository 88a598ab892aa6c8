#!/usr/bin/env python3
"""Measures how often peon-wasm's policy engine agrees with pycasbin on Casbin's own examples.

Run (after `swift build`):
    pip install pycasbin==2.8.0
    python3 scripts/casbin_conformance.py [--examples ../shared/casbin-examples] [--peon .build/debug/peon-wasm]

For every example model in `<examples>/go` and `<examples>/py` the script pairs it with the
example policies Casbin's tests use with it, draws requests from the policy's own vocabulary
(each rule as a request, each rule seen through every role link, and seeded random mixes), asks
pycasbin for the answers and `peon-wasm policy eval` for ours, and prints one table row per
example: whether peon-wasm loads it and how many answers agree. Nothing here is committed test
data: Casbin's example files stay where they are (Apache-2.0, test data only). The Swift tests use
their own fixtures (Tests/PeonPolicyTests/Fixtures/generate.py).

Casbin needs code for a few features that peon-wasm declares instead; the script does in Python
what Casbin's own tests do in code, and passes peon-wasm the equivalent declaration:
  * conditional role links `g = _, _, (_, _)`: every link gets Casbin's time_match_func;
  * pattern roles (`rbac_with_pattern_*` ...): the matching function Casbin's tests register.
"""
import argparse
import glob as globmodule
import json
import logging
import os
import random
import re
import subprocess
import sys
import tempfile

import casbin
from casbin import util

logging.disable(logging.CRITICAL)

# Pattern-role functions Casbin's tests register for these examples: (kind, role type, function).
# kind "name" = AddNamedMatchingFunc, "domain" = AddNamedDomainMatchingFunc.
PATTERN_ROLES = {
    "rbac_with_pattern": [("name", "g2", "keyMatch2")],
    "rbac_with_all_pattern": [("name", "g", "keyMatch2"), ("domain", "g", "keyMatch2")],
    "rbac_with_domain_pattern": [("domain", "g", "keyMatch2")],
    "rbac_with_domain_and_policy_pattern": [("domain", "g", "keyMatch2")],
    "keymatch_with_rbac_in_domain": [],
    "rbac_with_multiply_matched_pattern": [("name", "g", "globMatch")],
}
PY_FUNCTIONS = {"keyMatch2": util.key_match2, "globMatch": util.glob_match, "keyMatch": util.key_match}

# Extra model/policy pairings Casbin's tests use besides `X_model.conf` + `X_policy.csv`.
EXTRA_POLICIES = {
    "basic_model_without_spaces": ["basic_policy"],
    "basic_with_root_model": ["basic_policy"],
    "basic_model": ["basic_policy", "basic_inverse_policy"],
    "comment_model": ["basic_policy"],
    "syntax_matcher_model": ["basic_policy"],
    "rbac_model": ["rbac_policy", "rbac_with_hierarchy_policy", "rbac_with_cycle_policy"],
    "rbac_model_in_multi_line": ["rbac_policy"],
    "rbac_model_matcher_using_in_op": ["rbac_policy"],
    "rbac_model_matcher_using_in_op_bracket": ["rbac_policy"],
    "rbac_with_not_deny_model": ["rbac_with_deny_policy"],
    "rbac_with_domains_model": ["rbac_with_domains_policy", "rbac_with_domains_policy2",
                                "rbac_with_hierarchy_with_domains_policy"],
    "rbac_with_domains_without_policy_matcher": ["rbac_with_hierarchy_without_policy_domains"],
    "rbac_with_temporal_roles_model": ["rbac_with_temporal_roles_policy", "rbac_with_temporal_roles_condition_policy"],
    "rbac_with_domain_temporal_roles_model": ["rbac_with_domain_temporal_roles_policy",
                                              "rbac_with_domain_temporal_roles_condition_policy"],
    "keymatch_model": ["keymatch_policy"],
    "keymatch_custom_model": ["keymatch2_policy"],
    "keyget_model": ["keymatch_policy"],
    "keyget2_model": ["keymatch2_policy"],
    "priority_model": ["priority_policy", "priority_indeterminate_policy"],
    "priority_model_explicit": ["priority_policy_explicit"],
    "priority_model_explicit_customized": ["priority_policy_explicit_customized"],
    "priority_model_enforce_context": ["priority_policy_enforce_context"],
    "subject_priority_model": ["subject_priority_policy"],
    "subject_priority_model_with_domain": ["subject_priority_policy_with_domain"],
    "abac_rule_model": ["abac_rule_policy"],
    "abac_not_using_policy_model": ["abac_rule_effect_policy"],
    "rbac_with_multiply_matched_pattern": ["rbac_with_multiply_matched_pattern"],
    "keymatch_with_rbac_in_domain": ["keymatch_with_rbac_in_domain"],
    "rbac_with_constraints_model": ["rbac_policy"],
}


def policies_for(directory, model_path):
    stem = os.path.basename(model_path)[:-len(".conf")]
    names = list(EXTRA_POLICIES.get(stem, []))
    base = stem[:-len("_model")] if stem.endswith("_model") else stem
    for candidate in (base + "_policy", base):
        if candidate not in names and os.path.exists(os.path.join(directory, candidate + ".csv")):
            names.append(candidate)
    paths = [os.path.join(directory, name + ".csv") for name in names if os.path.exists(os.path.join(directory, name + ".csv"))]
    return paths or [None]


def read_sections(model_text):
    sections, section = {}, None
    for raw in model_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" in line and section:
            key, value = line.split("=", 1)
            sections.setdefault(section, {})[key.strip()] = value.strip()
    return sections


def fields(definition):
    return [re.split(r"[\s#;]", part.strip())[0] for part in definition.split(",")]


def policy_rows(policy_path):
    rows = []
    if policy_path is None:
        return rows
    with open(policy_path) as handle:
        for line in handle:
            if not line.strip() or line.strip().startswith("#"):
                continue
            rows.append([value.strip() for value in line.split(",")])
    return rows


class Attributes:
    def __init__(self, values):
        self.__dict__.update(values)


def concrete_instances(pattern):
    """A few texts a glob or key pattern may or may not match: each wildcard, class or placeholder
    replaced by a digit, a letter, or a nested path."""
    if not re.search(r"[*?\[:{]", pattern):
        return []
    instances = []
    for digit, letter, deep in (("1", "1", "1"), ("a", "a", "a/b"), ("!", "x", "x/y/z")):
        text = re.sub(r"\[[^\]]*\]", digit, pattern)
        text = re.sub(r":[A-Za-z_]+|\{[^}/]+\}", letter, text)
        text = text.replace("**", deep).replace("*", deep).replace("?", letter)
        if text != pattern:
            instances.append(text)
    return instances


def requests_for(model_text, rows, rng, count=60):
    sections = read_sections(model_text)
    request_fields = fields(sections.get("request_definition", {}).get("r", "sub, obj, act"))
    policy_fields = fields(sections.get("policy_definition", {}).get("p", "sub, obj, act"))
    matcher = " ".join(sections.get("matchers", {}).values()) + " " + " ".join(" ".join(row) for row in rows)
    attributes = {}
    for field, attribute in re.findall(r"\br\.(\w+)\.(\w+)", matcher):
        attributes.setdefault(field, set()).add(attribute)
    vocabulary = sorted({value for row in rows for value in row[1:] if value} | {"nobody", "data9"})
    links = [row for row in rows if row and row[0].startswith("g")]

    def value_for(field, suggestion=None):
        if field in attributes:
            obj = {}
            for attribute in sorted(attributes[field]):
                obj[attribute] = rng.choice([16, 18, 25, 60, 70]) if attribute.lower() == "age" else rng.choice(vocabulary)
            return obj
        if suggestion is not None:
            cidr = re.fullmatch(r"(\d+\.\d+\.\d+\.)\d+/\d+", suggestion)
            return cidr.group(1) + str(rng.choice([1, 7, 200])) if cidr else suggestion
        return rng.choice(vocabulary)

    requests = []
    for row in rows:
        if row[0] != "p":
            continue
        values = dict(zip(policy_fields, row[1:]))
        base = [value_for(field, values.get(field)) for field in request_fields]
        requests.append(base)
        for index, value in enumerate(base):  # a pattern's concrete instances (/data/[!1-9] -> /data/1, /data/a)
            if isinstance(value, str):
                for instance in concrete_instances(value):
                    variant = list(base)
                    variant[index] = instance
                    requests.append(variant)
        for link in links:  # the rule seen through a role link: the member instead of the role
            for index, value in enumerate(base):
                if value == link[2] if len(link) > 2 else False:
                    variant = list(base)
                    variant[index] = link[1]
                    requests.append(variant)
        variant = list(base)
        position = rng.randrange(len(variant))
        variant[position] = value_for(request_fields[position])
        requests.append(variant)
    while len(requests) < count:
        requests.append([value_for(field) for field in request_fields])
    unique, seen = [], set()
    for request in requests:
        key = json.dumps(request, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(request)
    return unique[: max(count, 160)]


def pycasbin_answers(model_path, policy_path, requests, stem):
    enforcer = casbin.Enforcer(model_path, policy_path) if policy_path else casbin.Enforcer(model_path)
    for kind, role_type, function in PATTERN_ROLES.get(stem, []):
        if kind == "name":
            enforcer.add_named_matching_func(role_type, PY_FUNCTIONS[function])
        else:
            enforcer.add_named_domain_matching_func(role_type, PY_FUNCTIONS[function])
    model_text = open(model_path).read()
    if "(_, _)" in model_text:
        for ptype, assertion in enforcer.get_model().model.get("g", {}).items():
            for rule in assertion.policy:
                if len(rule) >= 4 and "(_, _)" in assertion.value:
                    domain_arity = assertion.value.replace(" ", "").count("_") - 4
                    if domain_arity >= 1:
                        enforcer.add_named_domain_link_condition_func(ptype, rule[0], rule[1], rule[2], util.time_match_func)
                    else:
                        enforcer.add_named_link_condition_func(ptype, rule[0], rule[1], util.time_match_func)
        enforcer.build_role_links()
    answers = []
    for request in requests:
        values = [Attributes(value) if isinstance(value, dict) else value for value in request]
        try:
            answers.append(bool(enforcer.enforce(*values)))
        except Exception:  # pycasbin cannot evaluate this request: not counted
            answers.append(None)
    return answers


def peon_answers(peon, model_path, policy_path, requests, extra_arguments):
    """Our answers: True/False, or None when peon-wasm refuses the request; raises on a load error."""
    answers = []
    remaining = list(requests)
    empty = None
    if policy_path is None:
        empty = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
        empty.close()
        policy_path = empty.name
    while remaining:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            for request in remaining:
                handle.write(json.dumps(request) + "\n")
            path = handle.name
        result = subprocess.run([peon, "policy", "eval", "--model", model_path, "--policy", policy_path]
                                + extra_arguments + [path], capture_output=True, text=True)
        os.unlink(path)
        lines = [line for line in result.stdout.splitlines() if line]
        answers += [line.startswith("true") for line in lines]
        remaining = remaining[len(lines):]
        if result.returncode == 0:
            break
        error = result.stderr.strip()
        if ".jsonl:" not in error:  # the model or policy did not load
            raise RuntimeError(error)
        if lines or len(remaining) == 1:
            answers.append(None)
            remaining = remaining[1:]
        else:  # an older CLI that prints nothing when a later line fails: one request at a time
            single = peon_answers(peon, model_path, policy_path, remaining[:1], extra_arguments)
            answers += single
            remaining = remaining[1:]
    if empty:
        os.unlink(empty.name)
    return answers


def peon_declarations(stem, model_text):
    arguments = []
    for kind, role_type, function in PATTERN_ROLES.get(stem, []):
        arguments += ["--role-pattern" if kind == "name" else "--domain-pattern", f"{role_type}={function}"]
    return arguments


def pattern_key(stem):
    return stem[:-len("_model")] if stem.endswith("_model") else stem


def main():
    parser = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--examples", default=os.path.join(here, "..", "..", "shared", "casbin-examples"))
    parser.add_argument("--peon", default=os.path.join(here, "..", ".build", "debug", "peon-wasm"))
    parser.add_argument("--no-declarations", action="store_true", help="do not pass pattern-role flags (older CLI)")
    parser.add_argument("--json", help="also write the per-example results here")
    options = parser.parse_args()
    rows_out = []
    total_cases = loaded_cases = exact_cases = agreeing = counted = 0
    for flavour in ("go", "py"):
        directory = os.path.join(options.examples, flavour)
        for model_path in sorted(globmodule.glob(os.path.join(directory, "*.conf"))):
            stem = os.path.basename(model_path)[:-len(".conf")]
            model_text = open(model_path).read()
            for policy_path in policies_for(directory, model_path):
                name = f"{flavour}/{stem}" + (f" + {os.path.basename(policy_path)[:-4]}" if policy_path else "")
                rng = random.Random(name)
                requests = requests_for(model_text, policy_rows(policy_path), rng)
                try:
                    expected = pycasbin_answers(model_path, policy_path, requests, pattern_key(stem))
                except Exception as error:  # pycasbin itself cannot load it: not an example we can compare on
                    rows_out.append((name, "pycasbin fails", 0, 0, str(error).splitlines()[0][:60] if str(error) else type(error).__name__))
                    continue
                total_cases += 1
                arguments = [] if options.no_declarations else peon_declarations(pattern_key(stem), model_text)
                try:
                    ours = peon_answers(options.peon, model_path, policy_path, requests, arguments)
                except RuntimeError as error:
                    rows_out.append((name, "no load", 0, sum(answer is not None for answer in expected), str(error).splitlines()[0][-70:]))
                    counted += sum(answer is not None for answer in expected)
                    continue
                loaded_cases += 1
                same = sum(1 for a, b in zip(expected, ours) if a is not None and a == b)
                comparable = sum(1 for a in expected if a is not None)
                mismatches = [(r, a, b) for r, a, b in zip(requests, expected, ours) if a is not None and a != b]
                agreeing += same
                counted += comparable
                if same == comparable:
                    exact_cases += 1
                note = "" if not mismatches else f"e.g. {json.dumps(mismatches[0][0])} py={mismatches[0][1]} peon={mismatches[0][2]}"
                rows_out.append((name, "loads", same, comparable, note))
    width = max(len(row[0]) for row in rows_out)
    for name, status, same, comparable, note in rows_out:
        print(f"{name:<{width}}  {status:<14} {same:>4}/{comparable:<4} {note}")
    print(f"\n{exact_cases} of {total_cases} example cases agree exactly; {loaded_cases} load; "
          f"{agreeing} of {counted} answers agree ({100.0 * agreeing / max(counted, 1):.1f}%)")
    if options.json:
        with open(options.json, "w") as handle:
            json.dump([{"name": r[0], "status": r[1], "agree": r[2], "of": r[3], "note": r[4]} for r in rows_out], handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
