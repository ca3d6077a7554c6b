#!/usr/bin/env node
import { loadEnvFile } from "./config/index.js";
import { createAgent } from "./rpc/index.js";

// `wrenn-agent`: serves HostAgentService and the envd proxy on WRENN_AGENT_HOST:WRENN_AGENT_PORT;
// with WRENN_SERVER_URL, also registers with that server and heartbeats to it.
let agent: ReturnType<typeof createAgent>;
try {
  loadEnvFile();
  agent = createAgent();
  await agent.start();
  await agent.listen();
} catch (err) {
  console.error(`wrenn-agent: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

let closing = false;
const shutdown = (signal: string) => {
  if (closing) return;
  closing = true;
  // Sandboxes keep running: the next start re-adopts them.
  agent.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`wrenn-agent: shutdown after ${signal} failed:`, err);
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
