/**
 * The least a plugin built like ours can take to read a pod's namespace: a single executable that
 * starts one session of `ip -json -details -batch -` and `iptables-save` in CNI_NETNS (the
 * plugin's own session, src/net/session.ts), reads both and exits. Nothing is parsed, planned or
 * applied. The plugin benchmark samples it in every round beside `node -e 0` and the empty
 * executable: what lies between it and the plugin's CHECK (which reads the same and applies
 * nothing) is the plugin's own work; what lies between it and `node -e 0` no plugin of this
 * design can win back.
 */
import { startSession } from "../net/session.js";

const [ip, saved] = startSession(process.env.CNI_NETNS, [
  { argv: ["ip", "-json", "-details", "-batch", "-"], input: true, output: true },
  { argv: ["iptables-save"], output: true },
]);
void Promise.all([ip!.finish("addr show\nrule show\nroute show table all\nnetconf show\n"), saved!.finish("")]).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
