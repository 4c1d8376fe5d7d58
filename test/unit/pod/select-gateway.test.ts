import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/pod/config.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig({
    cniVersion: "1.0.0",
    type: "tenant-egress",
    gateway: "192.0.2.1",
    tenants: {
      red: { gateway: "192.0.2.10", vni: 200, overlaySubnet: "172.20.0.0/16" },
      blue: { gateway: "192.0.2.20" },
    },
    namespaces: { "team-blue": "blue" },
    ...extra,
  });
const args = (s: string) =>
  new Map(
    s
      .split(";")
      .filter(Boolean)
      .map((kv) => kv.split("=") as [string, string]),
  );

describe("selectGateway", () => {
  it("falls back to the conflist default", () => {
    expect(selectGateway(config(), args(""))).toMatchObject({
      gateway: "192.0.2.1",
      vni: 100,
      gatewayOverlayIP: "172.16.0.1",
      source: "gateway in the network configuration",
    });
  });

  it("maps the pod's namespace to its tenant and the tenant's tunnel settings", () => {
    expect(selectGateway(config(), args("K8S_POD_NAMESPACE=team-blue"))).toMatchObject({
      gateway: "192.0.2.20",
      tenant: "blue",
      vni: 100,
    });
  });

  it("prefers CNI_ARGS over the namespace map", () => {
    const a = selectGateway(config(), args("K8S_POD_NAMESPACE=team-blue;EGRESS_TENANT=red"));
    expect(a).toMatchObject({ gateway: "192.0.2.10", tenant: "red", vni: 200, gatewayOverlayIP: "172.20.0.1" });
  });

  it("prefers args.cni over CNI_ARGS, and the pod annotation over everything", () => {
    const c = config({ args: { cni: { egressGateway: "198.51.100.7" } } });
    expect(selectGateway(c, args("EGRESS_TENANT=red"))).toMatchObject({ gateway: "198.51.100.7" });
    const annotated = config({
      args: { cni: { egressGateway: "198.51.100.7" } },
      runtimeConfig: { "io.kubernetes.cri.pod-annotations": { "tenant-egress/tenant": "blue" } },
    });
    expect(selectGateway(annotated, args(""))).toMatchObject({ gateway: "192.0.2.20", tenant: "blue" });
  });

  it("returns undefined when nothing selects a gateway (the pod is left alone)", () => {
    const c = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress" });
    expect(selectGateway(c, args("K8S_POD_NAMESPACE=default;IgnoreUnknown=1;FOO=bar"))).toBeUndefined();
  });

  it("pins an overlay address from any source", () => {
    expect(selectGateway(config(), args("EGRESS_OVERLAY_IP=172.16.9.9"))).toMatchObject({ overlayIP: "172.16.9.9" });
    expect(selectGateway(config(), args("EGRESS_OVERLAY_IP6=fd00:64:7e7e::9"))).toMatchObject({
      overlayIP6: "fd00:64:7e7e::9",
    });
  });

  it.each([
    ["EGRESS_GATEWAY=not-an-ip", /EGRESS_GATEWAY.*"not-an-ip" is not an IPv4 address/],
    ["EGRESS_GATEWAY=2001:db8::1", /IPv6/],
    ["EGRESS_TENANT=green", /tenant "green" is not defined/],
    ["EGRESS_OVERLAY_IP=x", /EGRESS_OVERLAY_IP/],
    ["EGRESS_OVERLAY_IP=fd7e::9", /EGRESS_OVERLAY_IP: "fd7e::9" is an IPv6 address; an IPv4 address is needed/],
    ["EGRESS_OVERLAY_IP6=172.16.9.9", /EGRESS_OVERLAY_IP6: "172.16.9.9" is an IPv4 address; an IPv6 address is needed/],
    ["FOO=bar", /CNI_ARGS key "FOO" is unknown \(set IgnoreUnknown=1/],
  ])("rejects %s with code 4", (cniArgs, message) => {
    expect(() => selectGateway(config(), args(cniArgs))).toThrow(message);
    try {
      selectGateway(config(), args(cniArgs));
    } catch (e) {
      expect((e as { code: number }).code).toBe(4);
    }
  });
});
