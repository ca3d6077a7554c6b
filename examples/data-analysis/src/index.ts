import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox } from "@wrenn/sdk";

// Monthly sales of three shops: uploaded as a CSV, analysed with pandas, plotted with
// matplotlib, all in a Jupyter kernel inside the sandbox. Variables persist between cells.
const CSV = [
  "month,shop,sales",
  ...["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"].flatMap((month, i) => [
    `${month},north,${120 + i * 15}`,
    `${month},south,${90 + ((i * 37) % 50)}`,
    `${month},east,${60 + i * i * 4}`,
  ]),
].join("\n");

// The first sandbox of this template on a host builds it (minutes): give the call that long.
const sandbox = await Sandbox.create({
  template: "code-interpreter",
  requestTimeoutMs: 15 * 60_000,
});
try {
  await sandbox.files.write("/home/user/sales.csv", CSV);

  // 1. Load the data; the DataFrame stays in the kernel for the next cells.
  const load = await sandbox.runCode(
    "import pandas as pd\ndf = pd.read_csv('sales.csv', parse_dates=['month'])\nlen(df)",
  );
  console.log(`rows: ${load.text}`);

  // 2. A summary: the cell's value comes back as text (and as HTML and column data).
  const summary = await sandbox.runCode(
    "totals = df.groupby('shop')['sales'].sum().sort_values(ascending=False)\ntotals",
  );
  console.log(`total sales per shop:\n${summary.text}`);
  const best = await sandbox.runCode("totals.index[0]");
  console.log(`best shop: ${best.text}`);

  // 3. A plot: printed output streams by callback, the figure comes back as a base64 PNG.
  const plot = await sandbox.runCode(
    [
      "import matplotlib.pyplot as plt",
      "pivot = df.pivot(index='month', columns='shop', values='sales')",
      "ax = pivot.plot(marker='o', title='Monthly sales')",
      "ax.set_ylabel('sales')",
      "print(f'plotting {pivot.shape[1]} shops over {pivot.shape[0]} months')",
      "plt.show()",
    ].join("\n"),
    { onStdout: (out) => process.stdout.write(`[sandbox] ${out.line}`) },
  );
  const png = plot.results.find((result) => result.png)?.png;
  if (!png) throw new Error(`no figure came back: ${JSON.stringify(plot.error ?? plot.logs)}`);
  const file = join(tmpdir(), "wrenn-sales.png");
  await writeFile(file, Buffer.from(png, "base64"));
  console.log(`figure: ${file} (${Buffer.from(png, "base64").length} bytes)`);

  // 4. Errors in the code are data, not exceptions: the traceback says what went wrong.
  const mistake = await sandbox.runCode("df['revenue'].sum()");
  console.log(`a mistake: ${mistake.error?.name}: ${mistake.error?.value}`);
} finally {
  await sandbox.kill();
}
