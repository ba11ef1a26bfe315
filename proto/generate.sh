#!/usr/bin/env bash
# Regenerates proto/gen from proto/custody/v1 with buf and the local protoc-gen-es (runs offline).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen
../node_modules/.bin/buf lint
../node_modules/.bin/buf generate
