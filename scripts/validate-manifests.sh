#!/usr/bin/env bash
# Validates trainwatch's Kubernetes manifests offline, strictly, against the real API schemas:
#
#   scripts/validate-manifests.sh                 # everything under deploy/kubernetes
#   scripts/validate-manifests.sh PATH...         # manifest files and/or directories
#   scripts/validate-manifests.sh --install-only  # only build the tools and schemas (e.g. in CI's setup step)
#
# Every *.yaml/*.yml file (except kustomization.yaml) is validated by kubeconform, and every directory holding a
# kustomization.yaml is rendered with `kustomize build` (what `kubectl apply -k` sends) and its output validated
# too. Validation is strict: an unknown or misspelt field, a malformed quantity or int-or-string, a missing
# required field, a duplicate key, or a kind with no schema (e.g. an uninstalled CRD's kind) fails it.
#
# Nothing is downloaded from GitHub. The first run needs Go (>= 1.26) and the Go module proxy:
#   - kubeconform and kustomize are built with `go install` from their Go modules;
#   - the Kubernetes schemas come from api/openapi-spec/swagger.json in the k8s.io/kubernetes Go module, and the
#     custom resources' from their CRDs in the KEDA and Prometheus Operator modules; scripts/k8s-jsonschema.mjs
#     turns them into kubeconform's "standalone strict" JSON schemas.
# All of it lands in ${TRAINWATCH_TOOLS_HOME:-$HOME/.cache/trainwatch/tools} (and Go's module cache); later runs
# use only that folder and work fully offline.
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2
KUBERNETES_VERSION=v1.37.2
KEDA_VERSION=v2.21.1
PROMETHEUS_OPERATOR_VERSION=v0.85.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TRAINWATCH_TOOLS_HOME:-$HOME/.cache/trainwatch/tools}"
CONVERTER="$ROOT/scripts/k8s-jsonschema.mjs"

log() { echo "validate-manifests: $*" >&2; }

install_only=false
paths=()
for a in "$@"; do
  case "$a" in
    --install-only) install_only=true ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) log "unknown option $a"; exit 2 ;;
    *) paths+=("$a") ;;
  esac
done
[ "${#paths[@]}" -gt 0 ] || paths=("$ROOT/deploy/kubernetes")

mkdir -p "$TOOLS/bin" "$TOOLS/schemas"
KUBECONFORM="$TOOLS/bin/kubeconform-$KUBECONFORM_VERSION"
KUSTOMIZE="$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION"
# The schema folder's name covers every input: new versions or a changed converter build a new one.
schema_key="k8s-$KUBERNETES_VERSION-keda-$KEDA_VERSION-promop-$PROMETHEUS_OPERATOR_VERSION-$(sha256sum "$CONVERTER" | cut -c1-12)"
SCHEMAS="$TOOLS/schemas/$schema_key"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    log "needs Go >= 1.26 on PATH once, to build kubeconform and kustomize and fetch the schemas"
    log "(https://go.dev/dl/); afterwards $TOOLS is enough"
    exit 3
  fi
}

# go install PKG@VERSION into a temporary GOBIN, then an atomic rename: concurrent runs never see half a binary.
build_tool() {
  local pkg="$1" name="$2" dest="$3" tmp
  [ -x "$dest" ] && return 0
  need_go
  log "building $pkg (first run only)"
  tmp="$(mktemp -d "$TOOLS/.build.XXXXXX")"
  (cd "$tmp" && GOWORK=off GOBIN="$tmp" go install "$pkg")
  mv -f "$tmp/$name" "$dest"
  rm -rf "$tmp"
}

# The zip of MODULE@VERSION in Go's module cache, downloaded through the module proxy when missing. Only the zip:
# files are read straight out of it, so neither the module's size once unpacked nor its `go` directive (newer
# than the local toolchain refuses to unpack) matters.
module_zip() {
  local json zip
  json="$(cd "$TOOLS" && GOWORK=off go mod download -json "$1" || true)"
  zip="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",\{0,1\}$/\1/p')"
  if [ -z "$zip" ] || [ ! -f "$zip" ]; then
    log "could not download Go module $1:"
    printf '%s\n' "$json" >&2
    exit 1
  fi
  echo "$zip"
}

# zip_extract ZIP MODULE@VERSION DEST PATH...: copies PATH (inside the module) from the zip to DEST/PATH.
zip_extract() {
  local zip="$1" prefix="$2" dest="$3" p
  shift 3
  for p in "$@"; do
    mkdir -p "$dest/$(dirname "$p")"
    if command -v unzip >/dev/null 2>&1; then
      unzip -p "$zip" "$prefix/$p" >"$dest/$p"
    else
      python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$zip" "$prefix/$p" >"$dest/$p"
    fi
    [ -s "$dest/$p" ] || { log "$p not found in $zip"; exit 1; }
  done
}

KEDA_CRDS=(scaledobjects scaledjobs triggerauthentications clustertriggerauthentications)
PROMOP_CRDS=(servicemonitors podmonitors prometheusrules)

build_schemas() {
  [ -f "$SCHEMAS/.complete" ] && return 0
  need_go
  command -v node >/dev/null 2>&1 || { log "needs node to convert the schemas"; exit 3; }
  log "generating JSON schemas from Kubernetes $KUBERNETES_VERSION, KEDA $KEDA_VERSION, Prometheus Operator $PROMETHEUS_OPERATOR_VERSION (first run only)"
  local tmp src m crds=() c
  tmp="$(mktemp -d "$TOOLS/schemas/.build.XXXXXX")"
  src="$tmp/.src"
  m="k8s.io/kubernetes@$KUBERNETES_VERSION"
  zip_extract "$(module_zip "$m")" "$m" "$src" api/openapi-spec/swagger.json
  m="github.com/kedacore/keda/v2@$KEDA_VERSION"
  for c in "${KEDA_CRDS[@]}"; do crds+=("config/crd/bases/keda.sh_$c.yaml"); done
  zip_extract "$(module_zip "$m")" "$m" "$src" "${crds[@]}"
  m="github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  crds=()
  for c in "${PROMOP_CRDS[@]}"; do crds+=("example/prometheus-operator-crd/monitoring.coreos.com_$c.yaml"); done
  zip_extract "$(module_zip "$m")" "$m" "$src" "${crds[@]}"
  local args=()
  while IFS= read -r -d '' c; do args+=(--crd "$c"); done < <(find "$src/config" "$src/example" -name '*.yaml' -print0 | sort -z)
  node "$CONVERTER" --swagger "$src/api/openapi-spec/swagger.json" --out "$tmp" "${args[@]}" >&2
  rm -rf "$src"
  touch "$tmp/.complete"
  # Another run may have finished first: keep its folder.
  mv -T "$tmp" "$SCHEMAS" 2>/dev/null || rm -rf "$tmp"
}

build_tool "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" kubeconform "$KUBECONFORM"
build_tool "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" kustomize "$KUSTOMIZE"
build_schemas
if $install_only; then
  log "tools and schemas ready in $TOOLS"
  exit 0
fi

kubeconform() {
  "$KUBECONFORM" -strict -summary -output text \
    -schema-location "$SCHEMAS/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" "$@"
}

files=()
kustomizations=()
for p in "${paths[@]}"; do
  if [ -d "$p" ]; then
    while IFS= read -r -d '' f; do
      case "$(basename "$f")" in
        kustomization.yaml | kustomization.yml | Kustomization) kustomizations+=("$(dirname "$f")") ;;
        *) files+=("$f") ;;
      esac
    done < <(find "$p" -type f \( -name '*.yaml' -o -name '*.yml' -o -name Kustomization \) -print0 | sort -z)
  elif [ -f "$p" ]; then
    files+=("$p")
  else
    log "no such file or directory: $p"
    exit 1
  fi
done
if [ "${#files[@]}" -eq 0 ] && [ "${#kustomizations[@]}" -eq 0 ]; then
  log "no manifests found in ${paths[*]}"
  exit 1
fi

failed=0
if [ "${#files[@]}" -gt 0 ]; then
  echo "== manifest files (${#files[@]})"
  kubeconform "${files[@]}" || failed=1
fi
for k in "${kustomizations[@]}"; do
  echo "== kustomize build $k"
  if rendered="$("$KUSTOMIZE" build "$k")"; then
    printf '%s\n' "$rendered" | kubeconform || failed=1
  else
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  log "FAILED"
  exit 1
fi
log "all manifests valid"
