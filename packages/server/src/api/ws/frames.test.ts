import { describe, expect, it } from "vitest";
import { ServerError } from "../../errors.js";
import {
  closeCodeOf,
  outputFrame,
  parseControlFrame,
  parseOpenFrame,
  startInput,
} from "./frames.js";

describe("exec stream frames", () => {
  it("parses start and connect, and maps start to the service's input", () => {
    const start = parseOpenFrame(
      JSON.stringify({ type: "start", cmd: "cat", stdin: true, pty: { cols: 80, rows: 24 } }),
    );
    expect(start.ok && start.frame.type === "start" && startInput(start.frame)).toEqual({
      cmd: "cat",
      stdin: true,
      pty: { cols: 80, rows: 24 },
    });
    expect(parseOpenFrame('{"type":"connect","tag":"web"}')).toEqual({
      ok: true,
      frame: { type: "connect", tag: "web" },
    });
  });

  it.each([
    ["", /JSON object/],
    ["null", /JSON object/],
    ['"start"', /JSON object/],
    ["[1]", /JSON object/],
    ["{}", /unknown frame type null/],
    ['{"type":"resize","cols":1,"rows":1}', /unknown frame type "resize"/],
    ['{"type":"start","cmd":""}', /^cmd:/],
    ['{"type":"start","cmd":"x","timeout_ms":-1}', /^timeout_ms:/],
    ['{"type":"start","cmd":"x","tag":"a\\nb"}', /^tag:/],
    ['{"type":"connect","pid":1,"tag":"a"}', /exactly one/],
    ['{"type":"connect","pid":0}', /^pid:/],
  ])("refuses first frame %s, naming the problem", (text, message) => {
    const parsed = parseOpenFrame(text);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.message).toMatch(message);
  });

  it("parses control frames and refuses a second start", () => {
    expect(parseControlFrame('{"type":"signal","signal":"SIGKILL"}')).toEqual({
      ok: true,
      frame: { type: "signal", signal: "SIGKILL" },
    });
    expect(parseControlFrame('{"type":"resize","cols":0,"rows":1}').ok).toBe(false);
    expect(parseControlFrame('{"type":"start","cmd":"x"}')).toEqual({
      ok: false,
      message: expect.stringMatching(/already has a process/),
    });
  });

  it("prefixes output with its stream byte and closes with 4000 + status", () => {
    expect([...outputFrame("stderr", new Uint8Array([7, 8]))]).toEqual([2, 7, 8]);
    expect(closeCodeOf(new ServerError("timeout", "t"))).toBe(4504);
    expect(closeCodeOf(new ServerError("payload_too_large", "p"))).toBe(4413);
  });
});
