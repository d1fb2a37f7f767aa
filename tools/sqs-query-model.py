#!/usr/bin/env python3
"""Build models/sqs-query.json: the current SQS model (botocore's AWS JSON 1.0 one)
re-dressed in the query protocol's serialization traits, so that query clients can
use every member the JSON API has (MessageSystemAttributeNames came after SQS's
query model was retired).

    tools/sqs-query-model.py CURRENT_SQS_MODEL.json[.gz] LAST_QUERY_SQS_MODEL.json OUT.json

LAST_QUERY_SQS_MODEL is botocore 1.34's data/sqs/2012-11-05/service-2.json (the last
query-protocol release). Traits (locationName, flattened, resultWrapper, error codes)
come from it; members it lacks get SQS's documented query names. Apache-2.0, see
models/NOTICE. The result is then trimmed with tools/trim-model.py.
"""
import gzip, json, os, subprocess, sys, tempfile

# Query names of members newer than the last query model (SQS API reference).
NEW_MEMBERS = {("ReceiveMessageRequest", "MessageSystemAttributeNames"): "MessageSystemAttributeName"}
# Query error codes of error shapes newer than the last query model (SQS API reference, "Errors").
NEW_ERRORS = {
    "InvalidAddress": ("InvalidAddress", 404), "InvalidSecurity": ("InvalidSecurity", 403),
    "InvalidAttributeValue": ("InvalidAttributeValue", 400), "RequestThrottled": ("RequestThrottled", 400),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
    "KmsAccessDenied": ("KMS.AccessDeniedException", 400), "KmsDisabled": ("KMS.DisabledException", 400),
    "KmsInvalidKeyUsage": ("KMS.InvalidKeyUsageException", 400),
    "KmsInvalidState": ("KMS.InvalidStateException", 400), "KmsNotFound": ("KMS.NotFoundException", 400),
    "KmsOptInRequired": ("KMS.OptInRequired", 403), "KmsThrottled": ("KMS.ThrottlingException", 400),
}
TRAITS = ("locationName", "flattened")


def load(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        return json.load(f)


def copy_traits(dst, src):
    for t in TRAITS:
        if src and t in src:
            dst[t] = src[t]


def main():
    current, last_query, out = sys.argv[1:]
    model, old = load(current), load(last_query)
    model["metadata"] = dict(old["metadata"])
    for name, op in model["operations"].items():
        old_op = old["operations"].get(name, {})
        if "output" in op and "output" in old_op:
            op["output"]["resultWrapper"] = old_op["output"].get("resultWrapper")
    for name, shape in model["shapes"].items():
        old_shape = old["shapes"].get(name, {})
        copy_traits(shape, old_shape)
        for part in ("member", "key", "value"):
            if part in shape:
                copy_traits(shape[part], old_shape.get(part))
        for m, ref in shape.get("members", {}).items():
            copy_traits(ref, old_shape.get("members", {}).get(m))
            if (name, m) in NEW_MEMBERS:
                ref["locationName"] = NEW_MEMBERS[(name, m)]
                ref["flattened"] = True
                model["shapes"][ref["shape"]]["member"]["locationName"] = NEW_MEMBERS[(name, m)]
        if shape.get("exception"):
            if "error" in old_shape:
                shape["error"] = old_shape["error"]
            elif name in NEW_ERRORS:
                code, status = NEW_ERRORS[name]
                shape["error"] = {"code": code, "httpStatusCode": status, "senderFault": True}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(model, f)
    trim = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trim-model.py")
    subprocess.run([sys.executable, trim, f.name, out], check=True)
    os.unlink(f.name)


if __name__ == "__main__":
    main()
