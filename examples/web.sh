#!/bin/sh
# A minimal web server in shell: answers GET / with a small HTML page, anything else with 404.
# Serve it:  sockcat exec 8080 -- examples/web.sh
# Try it:    curl -i http://127.0.0.1:8080/      (or open that address in a browser)

CR=$(printf '\r')
read -r METHOD TARGET VERSION || exit 0
# The request headers end with an empty line; read them so the client is done sending.
while read -r HEADER; do
  HEADER=${HEADER%"$CR"}
  [ -z "$HEADER" ] && break
done

# respond STATUS BODY: an HTTP/1.0 response; the length tells the client where the body ends.
respond() {
  printf 'HTTP/1.0 %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$1" "$(printf '%s' "$2" | wc -c)" "$2"
}

if [ "$METHOD" != GET ]; then
  respond '405 Method Not Allowed' '<h1>405 : seule la méthode GET est servie</h1>'
  exit 0
fi
case $TARGET in
  / | /index.html)
    respond '200 OK' "<!DOCTYPE html>
<html><head><title>sockcat</title></head>
<body><h1>Bonjour !</h1><p>Il est $(date +%H:%M:%S) ; vous venez de $SOCKCAT_PEER_ADDR.</p></body></html>
" ;;
  *)
    respond '404 Not Found' '<h1>404 : page introuvable</h1>' ;;
esac
