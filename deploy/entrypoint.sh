#!/bin/sh
# The image's entrypoint: settings from secret files, then `aurora`.
#
# Every file named aurora_<setting> in $SECRETS_DIR (default /run/secrets, where
# Compose, Swarm and Kubernetes mount secrets) becomes the variable AURORA_<SETTING>, e.g.
# /run/secrets/aurora_jwt_secret -> AURORA_JWT_SECRET, its trailing newlines dropped. An empty
# file sets nothing (the setting keeps its default). A setting given both as a variable and as
# a file is refused: which one wins would be a guess. The values never appear on a command
# line, in the image or in `docker inspect`.
#
# Then `aurora ARGS...` runs in this process's place. A first argument that is `sh` or a path
# (`/bin/sh -c '...'`) runs as it is instead, with the same settings: a one-shot script of
# several aurora commands (compose.yaml's migrate service).
set -eu

secrets_dir=${SECRETS_DIR:-/run/secrets}
if [ -d "$secrets_dir" ]; then
    for file in "$secrets_dir"/aurora_*; do
        [ -f "$file" ] || continue
        name=${file##*/}
        case $name in
            *[!abcdefghijklmnopqrstuvwxyz0123456789_]*)
                echo "aurora-entrypoint: ignoring $file: a setting's file is named aurora_<lowercase setting>" >&2
                continue
                ;;
        esac
        variable=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
        value=$(cat "$file")
        [ -n "$value" ] || continue
        # $variable holds only [A-Z0-9_] (checked above): safe to expand by name.
        given=
        eval "given=\${$variable:-}"
        if [ -n "$given" ]; then
            echo "aurora-entrypoint: $variable is set both in the environment and in $file; keep one" >&2
            exit 2
        fi
        export "$variable=$value"
    done
fi

case ${1:-} in
    sh | */*) exec "$@" ;;
esac
exec aurora "$@"
