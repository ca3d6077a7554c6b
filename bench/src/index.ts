import { benchAgent } from "./agent.js";
import { benchCli } from "./cli.js";
import { benchEnvd } from "./envd.js";
import { benchExec } from "./exec.js";
import { benchFiles } from "./files.js";
import { benchFleet } from "./fleet.js";
import { benchFork } from "./fork.js";
import { benchIo } from "./io.js";
import { benchLoad } from "./load.js";
import { benchMicroVm } from "./microvm.js";
import { benchSdk } from "./sdk.js";
import { benchServer } from "./server.js";
import { benchSpeed } from "./speed.js";
import { type Figure, printTable } from "./stats.js";

// Each suite measures one layer and compares it with a plain baseline taken in the same run,
// since absolute times on a shared machine mean little.
const suites: Record<string, () => Promise<Figure[]>> = {
  envd: benchEnvd,
  agent: benchAgent,
  server: benchServer,
  sdk: benchSdk,
  io: benchIo,
  files: benchFiles,
  fleet: benchFleet,
  microvm: benchMicroVm,
  speed: benchSpeed,
  // issue #12's run('true') split hop by hop.
  exec: benchExec,
  fork: benchFork,
  // The wrenn command, a process per command.
  cli: benchCli,
  // Only when named: minutes long (WRENN_LOAD_SECONDS, WRENN_LOAD_SANDBOXES shorten it).
  load: benchLoad,
};

/** Suites that run only when named (`npm run bench -- load`). */
const ON_REQUEST = new Set(["load"]);
const only = process.argv.slice(2);
const figures: Figure[] = [];
for (const [name, run] of Object.entries(suites)) {
  if (only.length ? !only.includes(name) : ON_REQUEST.has(name)) continue;
  console.error(`bench: ${name}…`);
  figures.push(...(await run()));
}
printTable(figures);
console.log(JSON.stringify({ date: new Date().toISOString(), figures }, null, 2));
