#!/usr/bin/env bash
# npm run image: builds the image tenant-egress:<version> on this machine, with no registry.
# The base root file system comes from Debian's packages (debootstrap, using the first Debian
# mirror this machine's own apt sources name), the executables from `npm run build`, and the
# image is assembled by podman from scripts/image/Containerfile. Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./package.json").version')
for p in debootstrap podman; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
# The machine's own mirror and suite, from its apt sources (deb822 or one-line form).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
suite=$(sed -n 's/^Suites: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  read -r mirror suite < <(awk '$1 == "deb" { print $2, $3; exit }' /etc/apt/sources.list)
fi
[[ -n $mirror && -n $suite ]] || { echo "image: cannot find a Debian mirror in this machine's apt sources" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "image: building a minimal $suite root file system"
debootstrap --variant=minbase --include=iproute2,iptables,nftables,util-linux,procps,conntrack "$suite" "$work/rootfs" "$mirror" >/dev/null
rm -rf "$work/rootfs/var/cache/apt/archives"/*.deb "$work/rootfs/var/lib/apt/lists"/*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
npm run build >/dev/null
cp dist/tenant-egress dist/tenant-egress-install dist/tenant-egress-gateway scripts/image/Containerfile "$work/"
podman build --quiet -t "tenant-egress:$version" -f "$work/Containerfile" "$work"
echo "image: built tenant-egress:$version"
podman image ls "tenant-egress:$version"
