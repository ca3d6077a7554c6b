// Child process of crashNamespaceCreate: one create, to be killed midway.
import { defaultEnvdDir } from "../../src/config/index.js";
import { silentLogger } from "../../src/logger/index.js";
import { MicroVmRuntime, NamespaceRuntime } from "../../src/runtime/index.js";

const [agentDir, id, kind] = process.argv.slice(2) as [string, string, string | undefined];
const opts = { agentDir, envdDir: defaultEnvdDir(), logger: silentLogger() };
const runtime = kind === "microvm" ? new MicroVmRuntime(opts) : new NamespaceRuntime(opts);
await runtime.create({ id, template: "test-minimal", vcpus: 1, memoryMb: 256, diskSizeMb: 64 });
