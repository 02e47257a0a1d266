#!/usr/bin/env bash
# The main job on the bundled sample channel, offline: keygen → export → inspect → verify →
# import → import again (a no-op). Everything it writes goes to ./out/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/out
airgap=${AIRGAP:-airgap}
rm -rf "$out"
mkdir -p "$out/keys"
set -x
"$airgap" keygen "$out/keys/airgap"
"$airgap" export -f "$here/export.yaml" "$out/mirror.tar"
"$airgap" inspect "$out/mirror.tar"
"$airgap" verify "$out/mirror.tar" --trusted-key "$out/keys/airgap.pub"
"$airgap" import -f "$here/import.yaml" "$out/mirror.tar"
"$airgap" import -f "$here/import.yaml" "$out/mirror.tar"
set +x
echo
echo "The isolated side's channel is ready: $out/conda/anaconda"
find "$out/conda" -type f | sort
