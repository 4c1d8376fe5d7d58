#!/usr/bin/env bash
# Installs what the lab, the tests and the demo need on a Debian machine (run as root), and
# builds cnitool — the reference CNI client on libcni — from Debian's own source package, so no
# binary is downloaded from anywhere but Debian. Idempotent: a second run only checks.
set -euo pipefail

PACKAGES=(iproute2 iptables nftables python3 iperf3 tcpdump iputils-ping containernetworking-plugins util-linux procps
          golang-go golang-github-appc-cni-dev)
CNITOOL=/usr/local/bin/cnitool

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x $CNITOOL ]]; then
  echo "test-deps: building cnitool from Debian's golang-github-appc-cni source package"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A private apt state with deb-src entries derived from this machine's own sources, so the
  # system's apt configuration is left as it is.
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
  (cd "$work" && apt-get "${apt_private[@]}" source --download-only -qq golang-github-appc-cni >/dev/null 2>&1)
  mkdir -p "$work/gopath/src/github.com/containernetworking"
  tar -xf "$work"/golang-github-appc-cni_*.orig.tar.* -C "$work"
  src=$(find "$work" -maxdepth 1 -type d -name 'golang-github-appc-cni-*' -o -maxdepth 1 -type d -name 'cni-*' | head -n1)
  mv "$src" "$work/gopath/src/github.com/containernetworking/cni"
  (cd "$work/gopath/src/github.com/containernetworking/cni" &&
    GO111MODULE=off GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/gocache" GOFLAGS= \
      go build -o "$CNITOOL" ./cnitool)
  echo "test-deps: installed $CNITOOL"
fi
