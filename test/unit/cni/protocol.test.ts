import { describe, expect, it } from "vitest";
import { checkVersion, parseCniArgs, readEnv, versionHas } from "../../../src/cni/protocol.js";
import { podAddresses } from "../../../src/cni/result.js";

const env = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc123",
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

describe("versions", () => {
  it("matches exactly", () => {
    for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) expect(checkVersion(v)).toBe(v);
    for (const v of ["0.2.0", "1.0", "1.2.0", "0.4.1", "", undefined, 1])
      expect(() => checkVersion(v)).toThrow(expect.objectContaining({ code: 1 }));
  });

  it("knows which verbs each version defines", () => {
    expect(versionHas("0.3.1", "CHECK")).toBe(false);
    expect(versionHas("0.4.0", "CHECK")).toBe(true);
    expect(versionHas("1.0.0", "GC")).toBe(false);
    expect(versionHas("1.1.0", "STATUS")).toBe(true);
  });
});

describe("readEnv", () => {
  it("reads a runtime's environment", () => {
    expect(readEnv({ ...env, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns" })).toMatchObject({
      command: "ADD",
      ifname: "eth0",
      path: ["/opt/cni/bin", "/usr/lib/cni"],
      args: new Map([
        ["IgnoreUnknown", "1"],
        ["K8S_POD_NAMESPACE", "ns"],
      ]),
    });
  });

  it.each([
    [{ CNI_COMMAND: "FOO" }, /CNI_COMMAND/],
    [{ CNI_CONTAINERID: "" }, /CNI_CONTAINERID/],
    [{ CNI_CONTAINERID: "a;b" }, /CNI_CONTAINERID/],
    [{ CNI_IFNAME: "averyverylongname0" }, /CNI_IFNAME/],
    [{ CNI_IFNAME: "eth/0" }, /CNI_IFNAME/],
    [{ CNI_IFNAME: "eth+" }, /CNI_IFNAME/],
    [{ CNI_NETNS: "" }, /CNI_NETNS is required/],
    [{ CNI_NETNS: "relative/path" }, /absolute path/],
    [{ CNI_ARGS: "novalue" }, /CNI_ARGS/],
  ])("rejects %j with code 4", (override, message) => {
    expect(() => readEnv({ ...env, ...override })).toThrow(message);
  });

  it("lets DEL run without a netns", () => {
    expect(readEnv({ ...env, CNI_COMMAND: "DEL", CNI_NETNS: "" }).netns).toBe("");
  });

  it("parses CNI_ARGS values containing '='", () => {
    expect(parseCniArgs("A=b=c").get("A")).toBe("b=c");
  });
});

describe("podAddresses", () => {
  const v1 = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "cni0" }, { name: "veth1" }, { name: "eth0", sandbox: "/run/netns/x" }],
    ips: [{ address: "10.22.0.5/24", gateway: "10.22.0.1", interface: 2 }],
  };

  it("finds the IPv4 on CNI_IFNAME inside the container", () => {
    expect(podAddresses(v1, "eth0")).toEqual({ ipv4: { ip: "10.22.0.5", prefix: 24 } });
  });

  it("finds both families of a dual-stack pod, IPv6 in canonical form", () => {
    const dual = {
      ...v1,
      ips: [...v1.ips, { address: "FD00:10:22:0:0:0:0:5/64", gateway: "fd00:10:22::1", interface: 2 }],
    };
    expect(podAddresses(dual, "eth0")).toEqual({
      ipv4: { ip: "10.22.0.5", prefix: 24 },
      ipv6: { ip: "fd00:10:22::5", prefix: 64 },
    });
  });

  it("refuses an IPv6-only pod, naming why: the tunnel's underlay is IPv4", () => {
    const v6only = { ...v1, ips: [{ address: "fd00:10:22::5/64", interface: 2 }] };
    expect(() => podAddresses(v6only, "eth0")).toThrow(/only IPv6 .*fd00:10:22::5.*VXLAN over the pod's IPv4/);
  });

  it("reads 0.3/0.4 results and results without interface indexes", () => {
    expect(
      podAddresses(
        {
          ips: [
            { version: "6", address: "2001:db8::5/64" },
            { version: "4", address: "10.1.0.5/16" },
          ],
        },
        "eth0",
      ),
    ).toEqual({ ipv4: { ip: "10.1.0.5", prefix: 16 }, ipv6: { ip: "2001:db8::5", prefix: 64 } });
  });

  it("refuses a missing prevResult or one without an address on CNI_IFNAME", () => {
    expect(() => podAddresses(undefined, "eth0")).toThrow(/prevResult is missing/);
    expect(() => podAddresses(v1, "net1")).toThrow(/no IPv4 address on interface net1/);
    expect(() => podAddresses({ ips: "x" }, "eth0")).toThrow(/malformed/);
  });
});
