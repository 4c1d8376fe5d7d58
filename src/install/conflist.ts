/**
 * What the installer does to a node's CNI configuration directory, as pure functions of what
 * is there: which file the container runtime will load, and what that file must become for
 * tenant-egress to run last in its chain. Kept free of I/O so every case an installer meets on
 * real nodes (istio/cni#82, linkerd2#7855, multus#1221, istio#28258) is a unit test.
 *
 * The runtime's choice is libcni's: files ending in .conf, .conflist or .json, by name; the
 * first valid one wins unless CNI_CONF_NAME names one. Valid means: JSON; a .conflist has a
 * non-empty "plugins" list; a .conf/.json is a single plugin with a "type". A .conf primary is
 * wrapped into a list and written as a .conflist of the same base name, and the .conf goes (or
 * the runtime would still pick it). Our entry is always last, and there is only ever one.
 */

export const OUR_TYPE = "tenant-egress";
const EXTENSIONS = [".conf", ".conflist", ".json"];

export interface ConfFile {
  name: string;
  text: string;
}

type List = Record<string, unknown> & { plugins: Array<Record<string, unknown>> };

export type Parsed =
  | { ok: true; name: string; list: List; wrapped: boolean }
  | { ok: false; name: string; why: string };

export const isConfName = (name: string) => EXTENSIONS.some((e) => name.endsWith(e)) && !name.startsWith(".");

/** Parses one file the way the runtime would; a .conf/.json becomes a one-plugin list. */
export function parseConfFile(f: ConfFile): Parsed {
  let json: unknown;
  try {
    json = JSON.parse(f.text);
  } catch (e) {
    return { ok: false, name: f.name, why: `not JSON (${(e as Error).message})` };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return { ok: false, name: f.name, why: "not a JSON object" };
  const obj = json as Record<string, unknown>;
  if (f.name.endsWith(".conflist")) {
    const plugins = obj.plugins;
    if (!Array.isArray(plugins) || plugins.length === 0)
      return { ok: false, name: f.name, why: 'a .conflist needs a non-empty "plugins" list' };
    if (
      !plugins.every(
        (p) => typeof p === "object" && p !== null && typeof (p as Record<string, unknown>).type === "string",
      )
    ) {
      return { ok: false, name: f.name, why: 'every plugin of the list needs a "type"' };
    }
    return { ok: true, name: f.name, list: obj as List, wrapped: false };
  }
  if (typeof obj.type !== "string" || !obj.type)
    return { ok: false, name: f.name, why: 'a single-plugin config needs a "type"' };
  const { cniVersion, name, ...plugin } = obj;
  return {
    ok: true,
    name: f.name,
    list: {
      ...(cniVersion !== undefined ? { cniVersion } : {}),
      ...(name !== undefined ? { name } : {}),
      plugins: [plugin],
    },
    wrapped: true,
  };
}

export interface Choice {
  primary?: Extract<Parsed, { ok: true }>;
  /** Files passed over as invalid, or the named one that is invalid: left untouched, reported. */
  invalid: Array<Extract<Parsed, { ok: false }>>;
}

/** The file the runtime loads: CNI_CONF_NAME, else the first valid one by name. */
export function choosePrimary(files: ConfFile[], confName?: string): Choice {
  const candidates = files
    .filter((f) => isConfName(f.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const invalid: Choice["invalid"] = [];
  for (const f of candidates) {
    if (confName && f.name !== confName) continue;
    const p = parseConfFile(f);
    if (p.ok) return { primary: p, invalid };
    invalid.push(p);
  }
  return { invalid };
}

export interface Plan {
  /** The file to (re)write, and its content; absent when the node is already as it should be. */
  write?: ConfFile;
  /** A .conf replaced by its .conflist. */
  remove?: string;
  /** In words, for the log. */
  change?: string;
}

const render = (list: unknown) => `${JSON.stringify(list, null, 2)}\n`;

/**
 * What makes `primary` end with our entry (exactly once); `entry` undefined removes ours.
 * Compared as data, not text: a primary that already chains us, however it is formatted, is
 * not rewritten (a rewrite would wake the primary CNI's own watcher, and ours).
 */
export function planChain(primary: Extract<Parsed, { ok: true }>, entry: Record<string, unknown> | undefined): Plan {
  const others = primary.list.plugins.filter((p) => p.type !== OUR_TYPE);
  const ours = primary.list.plugins.length - others.length;
  const plugins = entry ? [...others, entry] : others;
  const next = { ...primary.list, plugins };
  if (!primary.wrapped) {
    if (JSON.stringify(next) === JSON.stringify(primary.list)) return {};
    const text = render(next);
    const what = !entry
      ? "removed tenant-egress from"
      : ours
        ? "updated tenant-egress in"
        : "appended tenant-egress to";
    return { write: { name: primary.name, text }, change: `${what} ${primary.name}` };
  }
  // A single-plugin file: nothing of ours can be in it; chaining turns it into a list.
  if (!entry) return {};
  const name = `${primary.name.replace(/\.(conf|json)$/, "")}.conflist`;
  return {
    write: { name, text: render(next) },
    remove: primary.name,
    change: `wrapped ${primary.name} into ${name} with tenant-egress appended`,
  };
}
