#!/usr/bin/env node
import { createAgent } from "./rpc/index.js";

// `wrenn-agent`: serves HostAgentService and the envd proxy on WRENN_AGENT_HOST:WRENN_AGENT_PORT.
const agent = createAgent();
await agent.start();
await agent.listen();

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
