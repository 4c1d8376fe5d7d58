#!/usr/bin/env bash
# Installs what the lab, the tests and the demo need on a Debian machine (run as root), builds
# cnitool — the reference CNI client on libcni — from Debian's own source package, and takes the
# CRI API definition (the gRPC service kubelet speaks to containerd) from Debian's containerd
# source package, so nothing is downloaded from anywhere but Debian. Idempotent: a second run
# only checks.
set -euo pipefail

PACKAGES=(iproute2 iptables nftables python3 iperf3 tcpdump iputils-ping iputils-arping containernetworking-plugins util-linux procps conntrack curl
          keepalived conntrackd
          prometheus chromium
          golang-go golang-github-appc-cni-dev containerd runc crun busybox-static)
CNITOOL=/usr/local/bin/cnitool
# Read by src/lab/cri.ts; Debian's file, never part of this repository.
CRI_PROTO=/usr/local/share/tenant-egress/cri-api/api.proto

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=""
# Downloads the source package $1 into $work (a private apt state with deb-src entries derived
# from this machine's own sources, so the system's apt configuration is left as it is).
fetch_source() {
  if [[ -z $work ]]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/apt/sources" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
      sed 's/^Types: deb$/Types: deb-src/' "$f" > "$work/apt/sources/$(basename "$f")"
    done
    if [[ -f /etc/apt/sources.list ]]; then
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$work/apt/sources/from-sources-list.list"
    fi
    apt_private=(-o "APT::Sandbox::User=root" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources"
                 -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
    apt-get "${apt_private[@]}" update -qq
  fi
  (cd "$work" && apt-get "${apt_private[@]}" source --download-only -qq "$1" >/dev/null 2>&1)
}

if [[ ! -x $CNITOOL ]]; then
  echo "test-deps: building cnitool from Debian's golang-github-appc-cni source package"
  fetch_source golang-github-appc-cni
  mkdir -p "$work/gopath/src/github.com/containernetworking"
  tar -xf "$work"/golang-github-appc-cni_*.orig.tar.* -C "$work"
  src=$(find "$work" -maxdepth 1 -type d -name 'golang-github-appc-cni-*' -o -maxdepth 1 -type d -name 'cni-*' | head -n1)
  mv "$src" "$work/gopath/src/github.com/containernetworking/cni"
  (cd "$work/gopath/src/github.com/containernetworking/cni" &&
    GO111MODULE=off GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/gocache" GOFLAGS= \
      go build -o "$CNITOOL" ./cnitool)
  echo "test-deps: installed $CNITOOL"
fi

if [[ ! -s $CRI_PROTO ]]; then
  echo "test-deps: taking the CRI API proto from Debian's containerd source package"
  fetch_source containerd
  mkdir -p "$(dirname "$CRI_PROTO")"
  # The gogoproto import and options only steer Go code generation, and gogo.proto is not in
  # the tarball: drop those lines so a gRPC client in any language can load the file.
  tar -xOf "$work"/containerd_*.orig.tar.* --wildcards '*/vendor/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto' |
    sed '/gogoproto/d' > "$CRI_PROTO.tmp"
  mv "$CRI_PROTO.tmp" "$CRI_PROTO"
  echo "test-deps: installed $CRI_PROTO"
fi
