#!/bin/sh
# Gives the time, then hangs up (like the daytime service, RFC 867).
# Serve it:  sockcat exec 9090 -- examples/time.sh
# Try it:    sockcat connect 9090 < /dev/null

date '+%Y-%m-%d %H:%M:%S %Z'
