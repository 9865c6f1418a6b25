#!/usr/bin/env bash
# Regenerates the Go code for every .proto under proto/.
#
# Usage: proto/generate.sh [OUT_DIR]
#   OUT_DIR defaults to proto/ itself (the committed files are overwritten); check.sh
#   passes a temporary directory instead.
#
# Needs protoc on PATH (Debian: apt-get install protobuf-compiler). The Go plugins come
# from the tool lines in go.mod, so their versions are pinned with the module.
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$proto_dir")"
out_dir="${1:-$proto_dir}"

if ! command -v protoc >/dev/null 2>&1; then
	echo "proto/generate.sh: protoc not found on PATH; install protobuf-compiler" >&2
	exit 1
fi

cd "$repo_dir"
gen_go="$(go tool -n protoc-gen-go)"
gen_go_grpc="$(go tool -n protoc-gen-go-grpc)"
gen_go_vtproto="$(go tool -n protoc-gen-go-vtproto)"

mkdir -p "$out_dir"
cd "$proto_dir"
mapfile -t files < <(find . -name '*.proto' -not -path './.*' | sed 's|^\./||' | sort)
if [ "${#files[@]}" -eq 0 ]; then
	echo "proto/generate.sh: no .proto files under $proto_dir" >&2
	exit 1
fi

protoc \
	--proto_path="$proto_dir" \
	--plugin=protoc-gen-go="$gen_go" \
	--plugin=protoc-gen-go-grpc="$gen_go_grpc" \
	--go_out="$out_dir" --go_opt=paths=source_relative \
	--go-grpc_out="$out_dir" --go-grpc_opt=paths=source_relative \
	--plugin=protoc-gen-go-vtproto="$gen_go_vtproto" \
	--go-vtproto_out="$out_dir" --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+size \
	"${files[@]}"
