#!/bin/sh
# The course's "client serveur" exercise: a shell server for a simple protocol. Each line is a
# request: "hello" is answered with hello, "heure" with the time, "fichier NOM" with the file's
# content (plain files directly inside SERVE_DIR, default: where sockcat runs), "quit" hangs up.
# Serve it:  SERVE_DIR=examples sockcat exec 9090 -- examples/protocole.sh
# Try it:    sockcat connect 9090      then type: hello, heure, fichier hello.sh, quit

DIR=${SERVE_DIR:-.}
CR=$(printf '\r')
echo "commandes : hello, heure, fichier NOM, quit"
while read -r COMMAND ARG; do
  COMMAND=${COMMAND%"$CR"}
  ARG=${ARG%"$CR"}
  case $COMMAND in
    hello) echo hello ;;
    heure) date '+%H:%M:%S' ;;
    fichier)
      case $ARG in
        '' | .* | */*) echo "erreur : nom de fichier refusé : '$ARG' (un nom simple, sans / ni . au début)" ;;
        *)
          if [ -f "$DIR/$ARG" ] && [ -r "$DIR/$ARG" ]; then cat -- "$DIR/$ARG"
          else echo "erreur : fichier introuvable : $ARG"
          fi ;;
      esac ;;
    quit) echo "au revoir"; exit 0 ;;
    '') ;;
    *) echo "commande inconnue : $COMMAND (commandes : hello, heure, fichier NOM, quit)" ;;
  esac
done
