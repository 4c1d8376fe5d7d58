import { useIptablesBackend } from "../src/lab/iptables-backend.js";

// Every test worker starts its processes on the backend TENANT_EGRESS_IPTABLES names.
useIptablesBackend();
