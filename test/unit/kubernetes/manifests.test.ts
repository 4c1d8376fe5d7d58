/**
 * Every manifest in conflist/kubernetes/ against the Kubernetes API's own schemas (the
 * kubernetes-models validators are generated from the OpenAPI spec), then what a schema cannot
 * know: the tenants file in the ConfigMap is one both halves accept, and every path a container
 * is told to use is one it mounts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseTenantsFile } from "../../../src/tenants/file.js";

const DIR = "conflist/kubernetes";
type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap as never,
  "apps/v1/DaemonSet": DaemonSet as never,
  "apps/v1/Deployment": Deployment as never,
};

const manifests: Array<[string, Manifest]> = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(DIR, f), "utf8")).map((d) => [f, d.toJS() as Manifest] as [string, Manifest]),
  );

interface Container {
  name: string;
  command?: string[];
  volumeMounts?: Array<{ mountPath: string }>;
}
const containersOf = (m: Manifest) =>
  (m.spec as { template?: { spec: { containers: Container[] } } })?.template?.spec.containers ?? [];

describe("Kubernetes manifests", () => {
  it("there are some", () => {
    expect(manifests.map(([f, m]) => `${f}:${m.kind}`)).toEqual(
      expect.arrayContaining([
        "tenants-configmap.yaml:ConfigMap",
        "node-installer.yaml:DaemonSet",
        "node-uninstall.yaml:DaemonSet",
      ]),
    );
  });

  it.each(manifests.map(([f, m]) => [`${f} ${m.kind}/${m.metadata.name}`, m] as const))(
    "%s is valid against the API schema",
    (_, m) => {
      const Model = MODELS[`${m.apiVersion}/${m.kind}`];
      expect(Model, `no validator for ${m.apiVersion} ${m.kind}`).toBeDefined();
      expect(() => new Model!(m as never).validate()).not.toThrow();
    },
  );

  it("the tenants ConfigMap holds a tenants file both halves accept", () => {
    const cm = manifests.find(
      ([, m]) => m.kind === "ConfigMap" && m.metadata.name === "tenant-egress-tenants",
    )![1] as unknown as { data: Record<string, string> };
    expect(() => parseTenantsFile(JSON.parse(cm.data["tenants.json"]!))).not.toThrow();
  });

  it("every file path on a command line lies under one of the container's mounts (or /tmp)", () => {
    for (const [f, m] of manifests) {
      for (const c of containersOf(m)) {
        const mounts = (c.volumeMounts ?? []).map((v) => v.mountPath);
        for (const arg of c.command ?? []) {
          const path = /^--[a-z-]+=(\/.*)$/.exec(arg)?.[1];
          if (!path) continue;
          expect(
            path.startsWith("/tmp/") || mounts.some((mp) => path === mp || path.startsWith(`${mp}/`)),
            `${f} ${c.name}: ${arg} is not under a mount`,
          ).toBe(true);
        }
      }
    }
  });

  it("the node DaemonSets run on every node, in the node's network namespace", () => {
    for (const [, m] of manifests.filter(([f, x]) => x.kind === "DaemonSet" && f.startsWith("node-"))) {
      const spec = (
        m.spec as { template: { spec: { hostNetwork: boolean; tolerations: Array<{ operator: string }> } } }
      ).template.spec;
      expect(spec.hostNetwork).toBe(true);
      expect(spec.tolerations).toContainEqual({ operator: "Exists" });
    }
  });
});
