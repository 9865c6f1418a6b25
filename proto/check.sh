#!/usr/bin/env bash
# Fails (exit 1) when the committed generated Go code differs from what
# proto/generate.sh produces now: run proto/generate.sh and commit the result.
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$proto_dir/generate.sh" "$tmp"

status=0
while IFS= read -r -d '' gen; do
	rel="${gen#"$tmp"/}"
	if ! diff -u "$proto_dir/$rel" "$gen" >"$tmp/.diff" 2>&1; then
		echo "proto/check.sh: $rel is out of date with its .proto:" >&2
		cat "$tmp/.diff" >&2
		status=1
	fi
done < <(find "$tmp" -name '*.pb.go' -print0)

# A committed generated file whose .proto is gone is stale too.
while IFS= read -r -d '' committed; do
	rel="${committed#"$proto_dir"/}"
	if [ ! -f "$tmp/$rel" ]; then
		echo "proto/check.sh: $rel has no .proto any more; delete it" >&2
		status=1
	fi
done < <(find "$proto_dir" -name '*.pb.go' -print0)

if [ "$status" -ne 0 ]; then
	echo "proto/check.sh: generated code is stale; run proto/generate.sh and commit the result" >&2
	exit 1
fi
echo "proto/check.sh: generated code is up to date"
