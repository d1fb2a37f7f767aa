#!/usr/bin/env python3
"""Trim an AWS service model (botocore's service-2.json) to the operations nimbus
implements, keeping every shape those operations reach (inputs, outputs, errors).

    tools/trim-model.py SOURCE.json[.gz] OUT.json [Operation ...]   (no operations: keep all)

The models are the AWS SDK models, Apache-2.0; see models/NOTICE.
"""
import gzip, json, sys


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def reach(shapes, name, seen):
    if name in seen or name not in shapes:
        return
    seen.add(name)
    s = shapes[name]
    for ref in (s.get("member"), s.get("key"), s.get("value")):
        if ref:
            reach(shapes, ref["shape"], seen)
    for m in s.get("members", {}).values():
        reach(shapes, m["shape"], seen)


def strip_docs(node):
    if isinstance(node, dict):
        return {k: strip_docs(v) for k, v in node.items() if k not in ("documentation", "documentationUrl", "examples")}
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def main():
    src, out, *ops = sys.argv[1:]
    model = load(src)
    keep = ops or list(model["operations"])
    missing = [o for o in keep if o not in model["operations"]]
    if missing:
        sys.exit(f"unknown operations: {missing}")
    seen = set()
    for name in keep:
        op = model["operations"][name]
        for key in ("input", "output"):
            if key in op:
                reach(model["shapes"], op[key]["shape"], seen)
        for e in op.get("errors", []):
            reach(model["shapes"], e["shape"], seen)
    trimmed = {
        "version": model.get("version", "2.0"),
        "metadata": model["metadata"],
        "operations": {k: model["operations"][k] for k in keep},
        "shapes": {k: v for k, v in model["shapes"].items() if k in seen},
    }
    with open(out, "w") as f:
        json.dump(strip_docs(trimmed), f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
