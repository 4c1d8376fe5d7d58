/**
 * A gateway configured with the plain commands of the source document (fixed: same VNI as the
 * pods, overlay address = the pods' gateway overlay address). The plugin's tests use it so they
 * exercise the pod side against a known, minimal gateway; the gateway CLI has its own tests.
 */

import { ipIn, sysctlIn } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";

export async function plainGateway(ns: string, ip: string, vni = 100, overlay = "172.16.0.1/16"): Promise<void> {
  await ipIn(ns, [
    `link add vx${vni} type vxlan id ${vni} dstport 4789 local ${ip} dev eth0`,
    `addr add ${overlay} dev vx${vni}`,
    `link set vx${vni} up`,
  ]);
  await sysctlIn(ns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0");
  await run([
    "ip",
    "netns",
    "exec",
    ns,
    "iptables",
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
