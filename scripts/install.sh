#!/usr/bin/env bash
# Installs the tenant-egress CNI plugin (and the gateway CLI) onto a node, and optionally a
# conflist. Run from a checkout after `npm ci && npm run build`, as root.
#
#   scripts/install.sh [--bin-dir DIR] [--conf-dir DIR] [--conflist FILE] [--force]
#
# The binaries are copied atomically (write to a temporary name, then rename), so a runtime
# that executes the plugin mid-install sees either the old or the new file, never half of one.
# A conflist is only written when --conflist is given, and never over an existing file unless
# --force: the runtime reads the lexically first conflist, so a careless install could change
# the network of every new pod on the node.
set -euo pipefail

bin_dir=/opt/cni/bin
conf_dir=/etc/cni/net.d
conflist=""
force=0
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --conf-dir) conf_dir=${2:?--conf-dir needs a directory}; shift 2 ;;
    --conflist) conflist=${2:?--conflist needs a file}; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
for bin in tenant-egress tenant-egress-gateway; do
  [[ -f $here/dist/$bin ]] || { echo "install.sh: dist/$bin is missing; run 'npm ci && npm run build' first" >&2; exit 1; }
done
command -v node >/dev/null || { echo "install.sh: node (>= 20) is not on PATH; the plugin runs on it" >&2; exit 1; }

install -d -m 0755 "$bin_dir"
for bin in tenant-egress tenant-egress-gateway; do
  tmp=$(mktemp "$bin_dir/.$bin.XXXXXX")
  install -m 0755 "$here/dist/$bin" "$tmp"
  mv -f "$tmp" "$bin_dir/$bin"
  echo "installed $bin_dir/$bin"
done

if [[ -n $conflist ]]; then
  [[ -f $conflist ]] || { echo "install.sh: $conflist does not exist" >&2; exit 1; }
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$conflist" ||
    { echo "install.sh: $conflist is not valid JSON" >&2; exit 1; }
  install -d -m 0755 "$conf_dir"
  target="$conf_dir/$(basename "$conflist")"
  if [[ -e $target && $force -eq 0 ]]; then
    echo "install.sh: $target exists; pass --force to replace it" >&2
    exit 1
  fi
  tmp=$(mktemp "$conf_dir/.conflist.XXXXXX")
  install -m 0644 "$conflist" "$tmp"
  mv -f "$tmp" "$target"
  echo "installed $target"
fi
