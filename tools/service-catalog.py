#!/usr/bin/env python3
"""Write models/catalog.json: how every AWS service is addressed on the wire, so that
nimbus can answer a request for a service it does not serve (yet) in that service's
own protocol and name it as the SDKs and the CLI do.

    tools/service-catalog.py [BOTOCORE_DATA_DIR] [OUT.json]

For each service of botocore's data folder (the CLI's service names), the model's
wire metadata (protocol, JSON version, target prefix, signing name, API version,
query compatibility, XML namespace). For the services nimbus embeds a model of
(models/*.json), also the names of all their operations, so that an operation of a
served service that nimbus does not implement is told apart from a misspelt one.

The metadata is botocore's (Apache-2.0, see models/NOTICE).
"""
import gzip, json, os, sys

KEEP = ("apiVersion", "endpointPrefix", "protocol", "protocols", "jsonVersion",
        "targetPrefix", "signingName", "serviceId", "awsQueryCompatible", "xmlNamespace")


def newest_model(service_dir):
    for version in sorted(os.listdir(service_dir), reverse=True):
        for name in ("service-2.json", "service-2.json.gz"):
            path = os.path.join(service_dir, version, name)
            if os.path.exists(path):
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rt") as f:
                    return json.load(f)
    return None


def main():
    if len(sys.argv) > 1:
        data = sys.argv[1]
    else:
        import botocore
        data = os.path.join(os.path.dirname(botocore.__file__), "data")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "models", "catalog.json")
    embedded = {f[:-5] for f in os.listdir(os.path.join(root, "models"))
                if f.endswith(".json") and f != "catalog.json"}
    catalog = {}
    for name in sorted(os.listdir(data)):
        service_dir = os.path.join(data, name)
        if not os.path.isdir(service_dir):
            continue
        model = newest_model(service_dir)
        if model is None:
            continue
        entry = {"metadata": {k: v for k, v in model["metadata"].items() if k in KEEP}}
        if name in embedded:
            entry["operations"] = sorted(model["operations"])
        catalog[name] = entry
    with open(out, "w") as f:
        json.dump(catalog, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
