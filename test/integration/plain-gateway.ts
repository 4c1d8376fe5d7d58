/**
 * A gateway configured with the plain commands of the source document (fixed: same VNI as the
 * pods, overlay address = the pods' gateway overlay address), plus their IPv6 twins for
 * dual-stack pods (the overlay IPv6 the plugin defaults to for the VNI, NAT66 on the uplink). The
 * plugin's tests use it so they exercise the pod side against a known, minimal gateway; the
 * gateway CLI has its own tests.
 */

import { ipIn, sysctlIn } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";
import { defaultOverlaySubnet6 } from "../../src/net/vxlan.js";

export async function plainGateway(ns: string, ip: string, vni = 100, overlay = "172.16.0.1/16"): Promise<void> {
  const overlay6 = defaultOverlaySubnet6(vni).replace("::/", "::1/");
  await ipIn(ns, [
    `link add vx${vni} type vxlan id ${vni} dstport 4789 local ${ip} dev eth0`,
    `addr add ${overlay} dev vx${vni}`,
    `addr add ${overlay6} dev vx${vni} nodad`,
    `link set vx${vni} up`,
  ]);
  await sysctlIn(ns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv6.conf.all.forwarding=1");
  for (const tool of ["iptables", "ip6tables"])
    await run([
      "ip",
      "netns",
      "exec",
      ns,
      tool,
      "-w",
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "eth0",
      "-j",
      "MASQUERADE",
    ]);
}
