/**
 * The standard scene of the demo and the benchmarks: one gateway on node-b serving two tenants
 * with different limits, and pods on node-a attached through the real chain bridge +
 * host-local + tenant-egress by cnitool: one per tenant, one of no tenant, and one CI runner
 * whose nested container (docker-in-docker) sits behind it. Each pod reaches its tenant the
 * way Kubernetes would tell the plugin: namespace map, pod annotation, or nothing at all.
 */

import { run } from "../net/run.js";
import { cni, type Network, writeBridgeConflist } from "./cni-client.js";
import { applyGateway } from "./gateway-cli.js";
import type { Background } from "./process.js";
import { type LabTenant, labTenant, pluginTenants } from "./tenants.js";
import { createLab, ipIn, type Lab, sysctlIn } from "./topology.js";
import { startInetServers } from "./traffic.js";

export const TENANTS: LabTenant[] = [
  labTenant("acme", 100, "172.16.0.0/24", { upload: "20mbit", download: "40mbit" }),
  labTenant("globex", 200, "172.17.0.0/24", { upload: "5mbit", download: "10mbit" }),
];

export interface ScenePod {
  name: string;
  tenant?: string;
  ns: string;
  ip: string;
  /** For the docker-in-docker pod: the nested container's namespace. */
  nested?: string;
  /** How the runtime told the plugin which tenant (or that there is none). */
  via: string;
}

export interface Scene {
  lab: Lab;
  gateway: { ns: string; ip: string };
  network: Network;
  pods: ScenePod[];
  servers: Background;
  teardown(): Promise<void>;
}

export type Progress = (step: string) => void;

/** Gives `pod` a nested container behind a docker0-like bridge that masquerades, as dockerd does. */
async function addNestedContainer(lab: Lab, pod: string): Promise<string> {
  const nested = await lab.addPodNamespace(`${pod.slice(lab.prefix.length + 1)}-nested`);
  await ipIn(pod, [
    `link add docker0 type veth peer name eth0 netns ${nested}`,
    "addr add 172.18.0.1/24 dev docker0",
    "link set docker0 up",
  ]);
  await ipIn(nested, ["addr add 172.18.0.2/24 dev eth0", "link set eth0 up", "route add default via 172.18.0.1"]);
  await sysctlIn(pod, "net.ipv4.ip_forward=1");
  await run([
    "ip",
    "netns",
    "exec",
    pod,
    "iptables",
    "-w",
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-s",
    "172.18.0.0/24",
    "!",
    "-o",
    "docker0",
    "-j",
    "MASQUERADE",
  ]);
  return nested;
}

export async function buildScene(prefix: string, progress: Progress = () => {}): Promise<Scene> {
  progress("creating the lab: router, internet host, node-a, node-b (network namespaces)");
  const lab = await createLab(prefix);
  let servers: Background | undefined;
  const teardown = async () => {
    await servers?.stop();
    await lab.teardown();
  };
  try {
    servers = await startInetServers(lab.ns.inet);
    progress("starting the gateway pod on node-b and applying two tenants with tenant-egress-gateway");
    const gateway = await lab.addGateway("gateway", 2);
    await applyGateway(gateway.ns, lab.dir, { linkRate: "1gbit", tenants: TENANTS });
    const network = await writeBridgeConflist({
      name: `${prefix}-pods`,
      dir: lab.dir,
      capabilities: { "io.kubernetes.cri.pod-annotations": true },
      egress: {
        tenants: pluginTenants(gateway.ip, TENANTS),
        namespaces: { "acme-prod": "acme", "acme-ci": "acme" },
        enforce: true,
      },
    });
    const specs: Array<{
      name: string;
      tenant?: string;
      via: string;
      cniArgs: string;
      capabilityArgs?: Record<string, unknown>;
      nested?: boolean;
    }> = [
      {
        name: "acme-web",
        tenant: "acme",
        via: "namespace acme-prod",
        cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme-prod;K8S_POD_NAME=web",
      },
      {
        name: "acme-ci",
        tenant: "acme",
        via: "namespace acme-ci",
        cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme-ci;K8S_POD_NAME=runner",
        nested: true,
      },
      {
        name: "globex-api",
        tenant: "globex",
        via: "pod annotation",
        cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shared;K8S_POD_NAME=api",
        capabilityArgs: { "io.kubernetes.cri.pod-annotations": { "tenant-egress/tenant": "globex" } },
      },
      { name: "plain", via: "no tenant", cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=plain" },
    ];
    const pods: ScenePod[] = [];
    for (const s of specs) {
      progress(`attaching pod ${s.name} through bridge + host-local + tenant-egress (cnitool ADD)`);
      const ns = await lab.addPodNamespace(`pod-${s.name}`);
      const result = JSON.parse(
        await cni("add", {
          node: lab.ns.nodeA,
          network,
          pod: ns,
          cniArgs: s.cniArgs,
          ...(s.capabilityArgs ? { capabilityArgs: s.capabilityArgs } : {}),
        }),
      ) as { ips: Array<{ address: string }> };
      const nested = s.nested ? await addNestedContainer(lab, ns) : undefined;
      pods.push({
        name: s.name,
        ...(s.tenant ? { tenant: s.tenant } : {}),
        ns,
        ip: result.ips[0]!.address.split("/")[0]!,
        via: s.via,
        ...(nested ? { nested } : {}),
      });
    }
    return { lab, gateway, network, pods, servers, teardown };
  } catch (e) {
    await teardown();
    throw e;
  }
}
