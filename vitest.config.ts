import { defineConfig } from "vitest/config";

// Integration tests build real namespaces and wait on real packets: give them room, and run
// test files in parallel (each lab uses its own namespace prefix) but never retry, since a
// flaky data path is a bug to see, not to hide.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // TENANT_EGRESS_IPTABLES=legacy runs everything on the x_tables backend (src/lab/iptables-backend.ts).
    setupFiles: ["test/setup-iptables-backend.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});
