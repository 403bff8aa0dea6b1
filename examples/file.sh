#!/bin/sh
# Sends a file if it exists: the client sends a file name on one line, the server answers with
# the file's content, or with a line starting "erreur :". Only plain files directly inside
# SERVE_DIR (default: the directory sockcat runs in) are served: no paths, no hidden files.
# Serve it:  SERVE_DIR=examples sockcat exec 9090 -- examples/file.sh
# Try it:    echo hello.sh | sockcat connect 9090

DIR=${SERVE_DIR:-.}
CR=$(printf '\r')
read -r NAME || [ -n "$NAME" ] || exit 0
NAME=${NAME%"$CR"}
case $NAME in
  '' | .* | */*)
    echo "erreur : nom de fichier refusé : '$NAME' (un nom simple, sans / ni . au début)"
    exit 1 ;;
esac
if [ -f "$DIR/$NAME" ] && [ -r "$DIR/$NAME" ]; then
  exec cat -- "$DIR/$NAME"
fi
echo "erreur : fichier introuvable : $NAME"
exit 1
