import { describe, expect, it } from "vitest";
import { choosePrimary, parseConfFile, planChain } from "../../../src/install/conflist.js";

const bridge = {
  cniVersion: "1.0.0",
  name: "k8s-pod-network",
  plugins: [
    { type: "bridge", bridge: "cni0" },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};
const ours = { type: "tenant-egress", enforce: true };
const text = (o: unknown) => JSON.stringify(o);

describe("choosing the primary config as the runtime does", () => {
  it("takes the first valid .conf/.conflist/.json by name, skipping invalid ones and other files", () => {
    const c = choosePrimary([
      { name: "99-last.conflist", text: text(bridge) },
      { name: "05-broken.conflist", text: "{ not json" },
      { name: "07-empty.conflist", text: text({ name: "x", plugins: [] }) },
      { name: "08-notype.conf", text: text({ name: "x" }) },
      { name: "10-calico.conflist", text: text(bridge) },
      { name: "00-readme.txt", text: "hello" },
      { name: ".10-hidden.conflist", text: text(bridge) },
    ]);
    expect(c.primary?.name).toBe("10-calico.conflist");
    expect(c.invalid.map((i) => [i.name, i.why])).toEqual([
      ["05-broken.conflist", expect.stringMatching(/not JSON/)],
      ["07-empty.conflist", expect.stringMatching(/non-empty "plugins"/)],
      ["08-notype.conf", expect.stringMatching(/needs a "type"/)],
    ]);
  });

  it("takes CNI_CONF_NAME when set, and reports it (untouched) when it is invalid", () => {
    const files = [
      { name: "10-a.conflist", text: text(bridge) },
      { name: "20-b.conflist", text: "[]" },
    ];
    expect(choosePrimary(files, "10-a.conflist").primary?.name).toBe("10-a.conflist");
    const bad = choosePrimary(files, "20-b.conflist");
    expect(bad.primary).toBeUndefined();
    expect(bad.invalid).toEqual([{ ok: false, name: "20-b.conflist", why: "not a JSON object" }]);
    expect(choosePrimary(files, "30-missing.conflist")).toEqual({ invalid: [] });
  });

  it("reads a single-plugin .conf as a list of one", () => {
    expect(
      parseConfFile({
        name: "10-flannel.conf",
        text: text({ cniVersion: "0.3.1", name: "cbr0", type: "flannel", delegate: {} }),
      }),
    ).toEqual({
      ok: true,
      name: "10-flannel.conf",
      wrapped: true,
      list: { cniVersion: "0.3.1", name: "cbr0", plugins: [{ type: "flannel", delegate: {} }] },
    });
  });
});

describe("chaining tenant-egress into it", () => {
  const primary = (o: unknown, name = "10-calico.conflist") => {
    const p = parseConfFile({ name, text: text(o) });
    if (!p.ok) throw new Error(p.why);
    return p;
  };

  it("appends our entry last", () => {
    const plan = planChain(primary(bridge), ours);
    expect(plan.change).toBe("appended tenant-egress to 10-calico.conflist");
    expect(JSON.parse(plan.write!.text).plugins.map((p: { type: string }) => p.type)).toEqual([
      "bridge",
      "portmap",
      "tenant-egress",
    ]);
    expect(plan.remove).toBeUndefined();
  });

  it("never leaves two entries: an older one anywhere in the list is dropped, ours goes last", () => {
    const twice = {
      ...bridge,
      plugins: [{ type: "tenant-egress", old: 1 }, ...bridge.plugins, { type: "tenant-egress", old: 2 }],
    };
    const plan = planChain(primary(twice), ours);
    expect(plan.change).toBe("updated tenant-egress in 10-calico.conflist");
    expect(JSON.parse(plan.write!.text).plugins).toEqual([...bridge.plugins, ours]);
  });

  it("writes nothing when the primary already chains us, however it is formatted", () => {
    const chained = { ...bridge, plugins: [...bridge.plugins, ours] };
    expect(planChain(primary(chained), ours)).toEqual({});
  });

  it("wraps a .conf into a .conflist of the same base name and removes the .conf", () => {
    const p = primary({ cniVersion: "0.3.1", name: "cbr0", type: "flannel" }, "10-flannel.conf");
    const plan = planChain(p, ours);
    expect(plan.write!.name).toBe("10-flannel.conflist");
    expect(plan.remove).toBe("10-flannel.conf");
    expect(JSON.parse(plan.write!.text)).toEqual({
      cniVersion: "0.3.1",
      name: "cbr0",
      plugins: [{ type: "flannel" }, ours],
    });
  });

  it("removes only our entry on uninstall, and leaves an unchained file alone", () => {
    const chained = { ...bridge, plugins: [...bridge.plugins, ours] };
    expect(JSON.parse(planChain(primary(chained), undefined).write!.text)).toEqual(bridge);
    expect(planChain(primary(bridge), undefined)).toEqual({});
  });
});
