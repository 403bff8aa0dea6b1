#!/bin/sh
# A server for a tiny protocol: it answers "hello" to "hello", and says what it expects otherwise.
# Serve it:  sockcat exec 9090 -- examples/hello.sh
# Try it:    echo hello | sockcat connect 9090

CR=$(printf '\r')
while read -r MESSAGE; do
  MESSAGE=${MESSAGE%"$CR"}   # clients in CRLF mode (nc -C, telnet) end lines with \r\n
  if [ "$MESSAGE" = hello ]; then
    echo hello
  else
    echo "je ne connais que : hello"
  fi
done
