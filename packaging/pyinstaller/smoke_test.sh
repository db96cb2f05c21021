#!/bin/sh
# The bundle's own check, in an empty environment: it answers, lists the models it carries
# and labels the demo images it carries. Usage: smoke_test.sh dist/fewshot-cpu
set -eu
bundle=$(cd "${1:?usage: smoke_test.sh BUNDLE_FOLDER}" && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
demo="$bundle/_internal/fewshot_gui/resources/demo"
# No PYTHONPATH, no venv, a new HOME: only what the folder holds can be used.
run() { env -i HOME="$home" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }

run "$bundle/fewshot-gui" --version
run "$bundle/fewshot" --version
run "$bundle/fewshot" models
run "$bundle/fewshot" label --device cpu --support "$demo/examples" \
    --images "$demo/unlabeled" --out "$home/labels.csv"
expected=$(find "$demo/unlabeled" -type f -name '*.jpg' | wc -l)
labeled=$(tail -n +2 "$home/labels.csv" | tr -d '\r' | awk -F, '$2 != "" && $6 == ""' | wc -l)
if [ "$labeled" -ne "$expected" ]; then
    echo "smoke test: $labeled of $expected demo images labeled" >&2
    exit 1
fi
# The window opens on the demo images and is still running 20 s later.
status=0
run timeout 20 "$bundle/fewshot-gui" || status=$?
if [ "$status" -ne 124 ]; then
    echo "smoke test: fewshot-gui exited with $status within 20 s" >&2
    exit 1
fi
echo "smoke test: all $expected demo images labeled, the window stayed up: $bundle"
