/**
 * A small CRI client: the gRPC calls kubelet makes to a container runtime for a pod's sandbox,
 * with the requests shaped the way kubelet shapes them (metadata name/namespace/uid, kubelet's
 * labels and annotations, the pod's log directory, Linux namespace options). It is how the tests
 * make containerd run the CNI chain exactly as it does on a Kubernetes node, instead of calling
 * the plugins themselves. The API definition is Debian's copy of the CRI `api.proto` (taken from
 * containerd's source package by scripts/test-deps.sh), loaded at run time: nothing generated is
 * checked in, and the client speaks whatever that containerd was built against.
 */
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const CRI_PROTO = "/usr/local/share/tenant-egress/cri-api/api.proto";

export interface PodSpec {
  name: string;
  namespace: string;
  uid?: string;
  annotations?: Record<string, string>;
  /** The pod's log directory (kubelet: /var/log/pods/<namespace>_<name>_<uid>). */
  logDirectory: string;
}

export interface SandboxStatus {
  id: string;
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  ip: string;
  /** containerd's verbose info: pid of the sandbox process, its runtime spec (netns path), … */
  info: { pid?: number; runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } } };
}

type Call = (
  request: object,
  options: grpc.CallOptions,
  done: (e: grpc.ServiceError | null, r: unknown) => void,
) => void;

export class CriClient {
  private readonly runtime: grpc.Client & Record<string, Call>;

  constructor(socket: string) {
    const definition = protoLoader.loadSync(CRI_PROTO, { longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } };
    };
    this.runtime = new pkg.runtime.v1.RuntimeService(
      `unix://${socket}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & Record<string, Call>;
  }

  private call<T>(method: string, request: object, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      this.runtime[method]!(request, { deadline: Date.now() + timeoutMs }, (e, r) =>
        e ? reject(new Error(`CRI ${method}: ${e.details || e.message}`)) : resolve(r as T),
      );
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string }> {
    return this.call("Version", { version: "v1" }, 2000);
  }

  /** The runtime's conditions and, verbosely, containerd's loaded CNI config ("cniconfig"). */
  async status(): Promise<{ conditions: Record<string, boolean>; info: Record<string, string> }> {
    const r = await this.call<{
      status: { conditions: Array<{ type: string; status: boolean }> };
      info: Record<string, string>;
    }>("Status", { verbose: true });
    return { conditions: Object.fromEntries(r.status.conditions.map((c) => [c.type, c.status])), info: r.info };
  }

  /** RunPodSandbox as kubelet sends it; resolves to the sandbox id. */
  async runPodSandbox(pod: PodSpec): Promise<string> {
    const uid = pod.uid ?? randomUUID();
    const config = {
      metadata: { name: pod.name, namespace: pod.namespace, uid, attempt: 0 },
      hostname: pod.name,
      logDirectory: pod.logDirectory,
      dnsConfig: { servers: [], searches: [], options: [] },
      labels: {
        "io.kubernetes.pod.name": pod.name,
        "io.kubernetes.pod.namespace": pod.namespace,
        "io.kubernetes.pod.uid": uid,
      },
      annotations: {
        "kubernetes.io/config.source": "api",
        "kubernetes.io/config.seen": new Date().toISOString(),
        ...pod.annotations,
      },
      linux: {
        cgroupParent: "",
        securityContext: {
          namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" },
          seccomp: { profileType: "RuntimeDefault" },
        },
      },
    };
    const r = await this.call<{ podSandboxId: string }>("RunPodSandbox", { config, runtimeHandler: "" });
    return r.podSandboxId;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call("StopPodSandbox", { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call("RemovePodSandbox", { podSandboxId: id });
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const r = await this.call<{
      status: { id: string; state: SandboxStatus["state"]; network?: { ip: string } };
      info: Record<string, string>;
    }>("PodSandboxStatus", { podSandboxId: id, verbose: true });
    return {
      id: r.status.id,
      state: r.status.state,
      ip: r.status.network?.ip ?? "",
      info: JSON.parse(r.info.info ?? "{}") as SandboxStatus["info"],
    };
  }

  async listPodSandbox(): Promise<Array<{ id: string; name: string; namespace: string; state: string }>> {
    const r = await this.call<{
      items: Array<{ id: string; state: string; metadata: { name: string; namespace: string } }>;
    }>("ListPodSandbox", {});
    return r.items.map((s) => ({ id: s.id, name: s.metadata.name, namespace: s.metadata.namespace, state: s.state }));
  }

  close(): void {
    this.runtime.close();
  }
}
