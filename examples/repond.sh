#!/bin/sh
# The classroom shell server: greets each client, then answers every line it sends.
# Serve it:  sockcat exec 9090 -- examples/repond.sh
# Try it:    sockcat connect 9090        (or: nc 127.0.0.1 9090)
# The same as the course's  socat tcp-listen:9090,fork,reuseaddr 'system: …'

echo "Le serveur écoute."

while read CLIENT_MESSAGE; do
  echo "le serveur répond : $CLIENT_MESSAGE"
done
