import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { ProgressBar, progressStats } from "./progress-bar.js";

describe("progressStats", () => {
  it("derives fraction, rate and ETA from bytes and elapsed time", () => {
    const s = progressStats(25, 100, 1000);
    expect(s.fraction).toBe(0.25);
    expect(s.rate).toBe(25);
    expect(s.etaMs).toBe(3000);
  });

  it("has no ETA before anything moved and is complete for an empty copy", () => {
    expect(progressStats(0, 100, 0).etaMs).toBeUndefined();
    expect(progressStats(0, 0, 10).fraction).toBe(1);
  });
});

describe("<ProgressBar>", () => {
  it("shows percent, bytes, rate, ETA and the current file", () => {
    const { lastFrame } = render(
      <ProgressBar
        label="a/b/big.bin"
        done={3 * 1024 * 1024}
        total={12 * 1024 * 1024}
        elapsedMs={2000}
        width={8}
      />,
    );
    const frame = lastFrame() ?? "";
    expect(frame).toContain("██░░░░░░");
    expect(frame).toContain(" 25%");
    expect(frame).toContain("3.0 MiB / 12 MiB");
    expect(frame).toContain("1.5 MiB/s");
    expect(frame).toContain("ETA 6s");
    expect(frame).toContain("a/b/big.bin");
  });

  it("is full at the end", () => {
    const { lastFrame } = render(
      <ProgressBar label="x" done={10} total={10} elapsedMs={5} width={4} />,
    );
    expect(lastFrame()).toContain("████ 100%");
  });
});
