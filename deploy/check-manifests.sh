#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/k8s (every *.yaml / *.yml except
# kustomization.yaml) offline against the JSON schemas bundled with `kubernetes-validate`
# for one pinned Kubernetes version, in strict mode (unknown fields are errors). No
# cluster and no network needed once the validator is installed; installs it with pip
# (or into a private virtualenv, for an "externally managed" Python) when missing.
#
# Usage: deploy/check-manifests.sh [FILE...]   (default: every manifest of deploy/k8s)
# Environment: K8S_VERSION (default 1.30), PYTHON (default python3).
#
# Output (stdout): exactly one line per file, "ok FILE: ..." or "FAIL FILE: reason",
# then "checked N files, M failed". Install chatter goes to stderr. Never prompts.
# Exit status: 0 every file valid, 1 some file invalid, 2 validator unavailable/unusable.
set -euo pipefail
cd "$(dirname "$0")/.."

k8s_version=${K8S_VERSION:-1.30}
# Release installed when missing (its bundled schemas cover Kubernetes 1.25 .. 1.37).
validator_pin="kubernetes-validate==1.37.0"
python=${PYTHON:-python3}

have_validator() { "$1" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; }

if ! command -v "$python" >/dev/null 2>&1; then
  echo "check-manifests: $python not found" >&2
  exit 2
fi
# Where the validator goes when pip refuses to install into $python (PEP 668).
venv=${XDG_CACHE_HOME:-$HOME/.cache}/proof-market/kubernetes-validate-venv
if ! have_validator "$python"; then
  if have_validator "$venv/bin/python"; then
    python=$venv/bin/python
  else
    echo "check-manifests: installing $validator_pin with pip" >&2
    if ! "$python" -m pip install --quiet --disable-pip-version-check "$validator_pin" >&2; then
      echo "check-manifests: pip refused; installing into the virtualenv $venv" >&2
      [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2 || exit 2
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$validator_pin" >&2 \
        || exit 2
      python=$venv/bin/python
    fi
    if ! have_validator "$python"; then
      echo "check-manifests: kubernetes-validate is still not importable by $python" >&2
      exit 2
    fi
  fi
fi

files=()
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  for f in deploy/k8s/*.yaml deploy/k8s/*.yml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    files+=("$f")
  done
fi

# One Python process for all files, through the library API (the CLI prints one line per
# resource and only WARNs, exit 0, on an unknown kind/apiVersion: here that is a failure).
exec "$python" - "$k8s_version" "${files[@]}" <<'PY'
import sys

import yaml
import kubernetes_validate as kv
from kubernetes_validate.utils import VersionNotSupportedError, all_versions, major_minor


def one_line(text):
    return " ".join(str(text).split())


def check(path, version):
    """Returns (ok, message) for one file."""
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except OSError as e:
        return False, "cannot read: %s" % e.strerror
    except yaml.YAMLError as e:
        return False, "invalid YAML: %s" % one_line(e)
    if not docs:
        return False, "no resource in the file"
    names = []
    for i, doc in enumerate(docs):
        where = "document %d" % (i + 1)
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            return False, "%s: not a Kubernetes resource (apiVersion and kind needed)" % where
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        if not name:
            return False, "%s (%s): metadata.name missing" % (where, doc["kind"])
        where = "%s/%s" % (doc["kind"], name)
        if "namespace" in doc["metadata"]:
            return False, "%s: has metadata.namespace (manifests must stay namespace-agnostic)" % where
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path_ = ".".join(str(p) for p in e.path) or "(top level)"
            return False, "%s: %s: %s" % (where, path_, one_line(e.message))
        except kv.SchemaNotFoundError as e:
            return False, "%s: %s" % (where, e.message)
        except VersionNotSupportedError:
            raise
        except Exception as e:  # noqa: BLE001 -- any validator crash is a failure
            return False, "%s: validator error: %s" % (where, one_line(e))
        names.append(where)
    return True, "%s valid against Kubernetes %s" % (", ".join(names), version)


version, files = sys.argv[1].lstrip("v"), sys.argv[2:]
if major_minor(version) not in {major_minor(v) for v in all_versions()}:
    print("check-manifests: kubernetes-validate %s has no schemas for Kubernetes %s (has %s)"
          % (kv.__version__, version, ", ".join(sorted(set(map(major_minor, all_versions())), key=lambda v: tuple(map(int, v.split(".")))))), file=sys.stderr)
    sys.exit(2)
if not files:
    print("check-manifests: no manifests to check", file=sys.stderr)
    sys.exit(2)
failed = 0
for path in files:
    try:
        ok, message = check(path, version)
    except VersionNotSupportedError:
        print("check-manifests: kubernetes-validate %s has no schemas for Kubernetes %s"
              % (kv.__version__, version), file=sys.stderr)
        sys.exit(2)
    print("%s %s: %s" % ("ok" if ok else "FAIL", path, message), flush=True)
    failed += not ok
print("checked %d files, %d failed" % (len(files), failed))
sys.exit(1 if failed else 0)
PY
