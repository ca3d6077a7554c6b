import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentError, ERROR_CODE_HEADER } from "./errors.js";

describe("AgentError.from", () => {
  it("names a full disk anywhere in the causes insufficient_storage, carried past Connect", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), {
      code: "ENOSPC",
    });
    const wrapped = AgentError.from(new AggregateError([new Error("other"), enospc], "teardown"));
    expect(wrapped.code).toBe("insufficient_storage");
    const mkfs = AgentError.from(new AgentError("internal", "mkfs.ext4: No space left on device"));
    expect(mkfs.code).toBe("insufficient_storage");
    const connect = wrapped.toConnectError();
    expect(connect.code).toBe(Code.ResourceExhausted);
    expect(connect.metadata.get(ERROR_CODE_HEADER)).toBe("insufficient_storage");
  });

  it("keeps precise codes and plain failures as they are", () => {
    const missing = new AgentError("not_found", "gone", { cause: { code: "ENOSPC" } });
    expect(AgentError.from(missing)).toBe(missing);
    expect(AgentError.from(new Error("boom")).code).toBe("internal");
  });
});
