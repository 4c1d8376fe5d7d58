/**
 * The gateway's Kubernetes manifest, checked against the Kubernetes API's own schemas (the
 * kubernetes-models validators, generated from the OpenAPI definitions) and for what it must
 * mean: the command, host network with NET_ADMIN, the tenants ConfigMap mounted as a directory,
 * probes on the endpoints `run --listen` serves, and the scrape annotation.
 */
import { readFile } from "node:fs/promises";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

const MANIFEST = "conflist/kubernetes/gateway.yaml";

async function load(): Promise<Array<Record<string, unknown>>> {
  const docs = parseAllDocuments(await readFile(MANIFEST, "utf8"));
  for (const d of docs) expect(d.errors, MANIFEST).toEqual([]);
  return docs.map((d) => d.toJS() as Record<string, unknown>);
}

describe(MANIFEST, () => {
  it("is valid against the Kubernetes API schemas", async () => {
    const docs = await load();
    expect(docs.map((d) => `${d.apiVersion} ${d.kind}`)).toEqual(["apps/v1 DaemonSet"]);
    new DaemonSet(docs[0] as never).validate();
  });

  it("is checked by a validator that rejects a wrong manifest", async () => {
    const ds = (await load())[0] as { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } };
    const broken = structuredClone(ds);
    broken.spec.template.spec.containers[0]!.ports = [{ containerPort: "metrics" }];
    expect(() => new DaemonSet(broken as never).validate()).toThrow(/containerPort/);
  });

  it("runs the daemon on the host network with NET_ADMIN, the tenants mounted, probes and scraping on --listen", async () => {
    const ds = new DaemonSet((await load())[0] as never);
    const pod = ds.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(c.command).toEqual([
      "tenant-egress-gateway",
      "run",
      "-f",
      "/etc/tenant-egress/tenants.json",
      "--listen",
      "0.0.0.0:9464",
    ]);
    expect(pod.hostNetwork).toBe(true);
    expect(c.securityContext?.capabilities?.add).toContain("NET_ADMIN");
    expect(c.securityContext?.privileged).toBeUndefined();
    expect(c.ports).toEqual([{ name: "metrics", containerPort: 9464, protocol: "TCP" }]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "metrics" });
    const mount = c.volumeMounts!.find((m) => m.mountPath === "/etc/tenant-egress")!;
    expect(mount.subPath).toBeUndefined();
    expect(pod.volumes!.find((v) => v.name === mount.name)?.configMap?.name).toBe("tenant-egress-tenants");
    expect(ds.spec!.template.metadata!.annotations).toEqual({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9464",
      "prometheus.io/path": "/metrics",
    });
    expect(ds.spec!.selector.matchLabels).toEqual(ds.spec!.template.metadata!.labels);
  });
});
