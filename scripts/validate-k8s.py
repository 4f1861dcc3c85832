#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests: every document against the Kubernetes JSON schemas
of the given versions (kubernetes-validate, strict: unknown fields fail), and EventHive's own
rules for its workloads, which a schema cannot express.

    validate-k8s.py --kubernetes-version 1.30.0 [--skip-kind GROUP/VERSION/KIND ...] FILE...

Kinds named by --skip-kind (operators' custom resources, whose schemas kubernetes-validate
does not ship) are only parsed and reported as skipped. Any other kind without a schema fails.
"""

import argparse
import sys

import yaml
from kubernetes_validate import utils


def workload_problems(doc):
    """EventHive's rules for its own pods: probes, limits, the restricted profile."""
    if doc["kind"] not in ("Deployment", "Job"):
        return []
    template = doc["spec"]["template"]
    if template["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "eventhive":
        return []
    spec, problems = template["spec"], []
    pod_security = spec.get("securityContext", {})
    if not pod_security.get("runAsNonRoot") or pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod must set runAsNonRoot and seccompProfile RuntimeDefault")
    for container in spec["containers"]:
        name = container["name"]
        security = container.get("securityContext", {})
        if not security.get("readOnlyRootFilesystem") or security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: needs readOnlyRootFilesystem and capabilities drop ALL")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: needs allowPrivilegeEscalation: false")
        resources = container.get("resources", {})
        if not {"cpu", "memory"} <= resources.get("requests", {}).keys() or "memory" not in resources.get("limits", {}):
            problems.append(f"{name}: needs cpu and memory requests and a memory limit")
        if not any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])):
            problems.append(f"{name}: needs a writable /tmp (the root filesystem is read-only)")
        if doc["kind"] == "Deployment":
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{name}: has no {probe}")
            if "sleep" not in container.get("lifecycle", {}).get("preStop", {}):
                problems.append(f"{name}: needs a preStop sleep so endpoints drop it before SIGTERM")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", action="append", required=True)
    parser.add_argument("--skip-kind", action="append", default=[], metavar="GROUP/VERSION/KIND")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failures = checked = skipped = 0
    for path in args.files:
        with open(path, encoding="utf-8") as file:
            docs = [doc for doc in yaml.safe_load_all(file) if doc]
        for doc in docs:
            where = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if f"{doc['apiVersion']}/{doc['kind']}" in args.skip_kind:
                skipped += 1
                continue
            for version in args.kubernetes_version:
                try:
                    utils.validate(doc, version, strict=True)
                except utils.ValidationError as error:
                    field = ".".join(str(part) for part in error.path)
                    print(f"FAIL {where} (Kubernetes {version}): {field}: {error.message}")
                    failures += 1
                except (utils.SchemaNotFoundError, utils.InvalidSchemaError) as error:
                    print(f"FAIL {where}: {error.message}")
                    failures += 1
            for problem in workload_problems(doc):
                print(f"FAIL {where}: {problem}")
                failures += 1
            checked += 1
    versions = ", ".join(args.kubernetes_version)
    print(f"  {checked} resources valid against Kubernetes {versions}, {skipped} custom resources skipped"
          if not failures else f"  {failures} problems in {checked} resources")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
