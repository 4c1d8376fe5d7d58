/**
 * The gateway's page at `/`: per tenant, live upload and download against rate and ceil, so an
 * operator can look instead of reading `status`. One self-contained HTML document (no external
 * script, style or font, nothing a locked-down network must serve) whose inline script fetches
 * /api/status every second. The SVG is drawn by one function, `renderTenants`, that runs in the
 * browser as its own source text (`renderTenants.toString()`): it must reference nothing outside
 * itself, and the same function draws the first paint from data embedded in the page, so the
 * page shows the gateway even before its first refresh (and in a unit test, as a string).
 */
import type { ApiStatus } from "./http.js";

/** The SVG for every tenant's two bars. Self-contained: it is sent to the browser as source text. */
export function renderTenants(s: ApiStatus): string {
  const esc = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const fmt = (bits: number) => {
    const units: Array<[number, string]> = [
      [1e9, "Gbit/s"],
      [1e6, "Mbit/s"],
      [1e3, "kbit/s"],
    ];
    for (const [scale, unit] of units)
      if (bits >= scale) return `${(bits / scale).toFixed(bits >= 100 * scale ? 0 : 1)} ${unit}`;
    return `${Math.round(bits)} bit/s`;
  };
  const width = 860;
  const barX = 110;
  const barW = 400;
  const rowH = 30;
  const colours: Record<string, string> = { upload: "#2b6cb0", download: "#2f855a" };
  const parts: string[] = [];
  let y = 0;
  for (const t of s.tenants) {
    parts.push(
      `<text x="0" y="${y + 18}" class="tenant">${esc(t.name)}</text><text x="${barX}" y="${y + 18}" class="note">VNI ${t.vni} · neighbours ${t.neighbours} · pods learned ${t.podsLearned}</text>`,
    );
    y += 26;
    for (const dir of ["upload", "download"] as const) {
      const d = t[dir];
      if (!d) {
        parts.push(
          `<text x="20" y="${y + 19}">${dir}</text><text x="${barX}" y="${y + 19}" class="missing">class missing in the kernel</text>`,
        );
        y += rowH;
        continue;
      }
      const full = Math.max(d.ceil, d.achieved, 1);
      const px = (bits: number) => Math.round((Math.min(bits, full) / full) * barW);
      parts.push(
        `<g class="bar" data-tenant="${esc(t.name)}" data-direction="${dir}">`,
        `<text x="20" y="${y + 19}">${dir}</text>`,
        `<rect x="${barX}" y="${y + 4}" width="${barW}" height="20" class="ceil"><title>ceil ${fmt(d.ceil)}</title></rect>`,
        `<rect x="${barX}" y="${y + 4}" width="${px(d.rate)}" height="20" class="rate"><title>rate ${fmt(d.rate)}</title></rect>`,
        `<rect x="${barX}" y="${y + 8}" width="${px(d.achieved)}" height="12" fill="${colours[dir]}" class="achieved"><title>now ${fmt(d.achieved)}</title></rect>`,
        `<line x1="${barX + px(d.rate)}" x2="${barX + px(d.rate)}" y1="${y + 1}" y2="${y + 27}" class="rate-mark"/>`,
        `<text x="${barX + barW + 12}" y="${y + 19}"><tspan class="now">${fmt(d.achieved)}</tspan> of rate ${fmt(d.rate)}, ceil ${fmt(d.ceil)}</text>`,
        `</g>`,
      );
      y += rowH;
    }
    y += 14;
  }
  if (!s.tenants.length) {
    parts.push(`<text x="0" y="20" class="missing">no tenants in the kernel</text>`);
    y = 30;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" role="img">${parts.join("")}</svg>`;
}

/**
 * One line about the pair (role, the peer's last advertisement, sync health, replicated
 * connections, addresses held), or nothing for a gateway that is no pair. Self-contained like
 * renderTenants: it runs in the browser as its own source text, and `now` is the browser's clock.
 */
export function renderHa(s: ApiStatus, now: number): string {
  const h = s.ha;
  if (!h) return "";
  const esc = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const ago = (iso: string) => `${Math.max(0, (now - Date.parse(iso)) / 1000).toFixed(1)} s ago`;
  const advert = h.peerAdvert
    ? `peer ${esc(h.peer)} advertised ${ago(h.peerAdvert.at)} (priority ${h.peerAdvert.priority})`
    : `no advertisement from peer ${esc(h.peer)} seen`;
  const sync = h.sync.healthy ? "sync healthy" : `sync unhealthy: ${esc(h.sync.reason)}`;
  return [
    `<span class="role role-${h.role}">${esc(h.instance)}: ${h.role}</span>`,
    `since ${new Date(h.since).toLocaleTimeString()}`,
    advert,
    `<span class="${h.sync.healthy ? "" : "error"}">${sync}</span>`,
    `${h.replicatedConnections} replicated connections`,
    `holds ${h.addresses.held.length} of ${h.addresses.moving.length} moving addresses`,
  ].join(" · ");
}

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 24px; color: #1a202c; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
#meta { color: #4a5568; margin-bottom: 16px; }
#meta .error, #ha .error { color: #c53030; }
#ha { margin-bottom: 16px; }
#ha .role { font-weight: 600; }
#ha .role-active { color: #2f855a; }
svg text { font: 13px system-ui, sans-serif; fill: #1a202c; }
svg text.tenant { font-weight: 600; font-size: 15px; }
svg text.note, svg text.missing { fill: #718096; }
svg rect.ceil { fill: #edf2f7; }
svg rect.rate { fill: #cbd5e0; }
svg line.rate-mark { stroke: #1a202c; stroke-width: 2; }
svg tspan.now { font-weight: 600; }
`;

/** The page, with the status at the time of the request embedded for the first paint. */
export function pageHtml(initial: ApiStatus): string {
  // Inside <script>, "<" must not start "</script>" however the data reads.
  const data = JSON.stringify(initial).replace(/</g, "\\u003c");
  const script = `
const renderTenants = ${renderTenants.toString()};
const renderHa = ${renderHa.toString()};
let refreshes = 0;
function show(s) {
  document.getElementById("tenants").innerHTML = renderTenants(s);
  document.getElementById("ha").innerHTML = renderHa(s, Date.now());
  const when = s.lastSuccess ? new Date(s.lastSuccess).toLocaleTimeString() : "never";
  const meta = document.getElementById("meta");
  meta.textContent = "uplink " + s.uplink + " · configuration generation " + s.generation + " · last successful reconcile " + when + " · unclassified packets " + s.directPackets;
  if (s.configError) {
    const e = document.createElement("div");
    e.className = "error";
    e.textContent = "configuration refused: " + s.configError;
    meta.appendChild(e);
  }
}
async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + (await r.text()));
    show(await r.json());
    document.body.dataset.refreshes = String(++refreshes);
  } catch (e) {
    document.getElementById("meta").textContent = "cannot read /api/status: " + e.message;
  }
  setTimeout(refresh, 1000);
}
show(${data});
setTimeout(refresh, 1000);
`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tenant-egress gateway</title><style>${STYLE}</style></head>
<body data-refreshes="0"><h1>tenant-egress gateway</h1><div id="meta"></div><div id="ha"></div><div id="tenants"></div>
<script>${script}</script></body></html>
`;
}
