import type { AgentConfig } from "../config/index.js";
import type { Logger } from "../logger/index.js";
import { AddressPool } from "../network/index.js";
import { TemplateStore } from "../template/index.js";
import { MicroVmRuntime } from "./microvm/index.js";
import { NamespaceRuntime } from "./namespace/index.js";
import { type RuntimeEntry, RuntimeSet } from "./runtime-set.js";

/**
 * The runtimes `config` asks for (all known ones when WRENN_RUNTIMES is unset), sharing one
 * address pool and one template store. Call `prepare()` before use: it drops the runtimes that
 * do not work here, unless they were asked for by name.
 */
export function createRuntimeSet(
  config: AgentConfig,
  logger: Logger,
  opts: { addressPool?: AddressPool } = {},
): RuntimeSet {
  const names = config.runtimes ?? ["namespace", "microvm"];
  const addressPool = opts.addressPool ?? new AddressPool();
  const entries: RuntimeEntry[] = [];
  const required = config.runtimes !== undefined;
  if (names.includes("namespace")) {
    entries.push({
      runtime: new NamespaceRuntime({
        agentDir: config.agentDir,
        envdDir: config.envdDir,
        logger,
        warmPool: config.warmPool,
        addressPool,
      }),
      required,
    });
  }
  if (names.includes("microvm")) {
    const templateStore =
      (entries[0]?.runtime as NamespaceRuntime | undefined)?.templateStore ??
      new TemplateStore({ agentDir: config.agentDir, logger });
    const microvm = new MicroVmRuntime({
      agentDir: config.agentDir,
      envdDir: config.envdDir,
      logger,
      addressPool,
      templateStore,
    });
    entries.push({ runtime: microvm, probe: () => microvm.probe(), required });
  }
  return new RuntimeSet(entries, config.defaultRuntime);
}
