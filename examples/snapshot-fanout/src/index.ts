import { Sandbox, Snapshot } from "@wrenn/sdk";

// Set a sandbox up once (here: generate a data set and a script), snapshot its filesystem, then
// start several sandboxes from the snapshot at once. Each starts with the prepared files and
// works on its own copy: what one changes, the others never see.

const WORKERS = 3;
const SETUP = `
import random
random.seed(7)
with open("/home/user/numbers.txt", "w") as f:
    for _ in range(30000):
        f.write(f"{random.randint(1, 1000)}\\n")
`;
// Worker i of n sums every n-th number starting at line i.
const WORKER = `
import sys
i, n = int(sys.argv[1]), int(sys.argv[2])
with open("/home/user/numbers.txt") as f:
    numbers = [int(line) for line in f]
print(sum(numbers[i::n]))
`;

const name = `fanout-${Date.now().toString(36)}`;
const source = await Sandbox.create();
let snapshotMade = false;
const workers: Sandbox[] = [];
try {
  await source.commands.run("python3", { args: ["-c", SETUP] });
  await source.files.write("/home/user/worker.py", WORKER);
  const checksum = (await source.commands.run("sha256sum /home/user/numbers.txt")).stdout;
  const total = (await source.commands.run("python3 /home/user/worker.py 0 1")).stdout.trim();
  console.log(
    `prepared ${source.sandboxId}: numbers.txt ${checksum.slice(0, 16)}…, total ${total}`,
  );

  const snapshot = await source.createSnapshot(name);
  snapshotMade = true;
  console.log(`snapshot ${snapshot.name} made from ${source.sandboxId}`);
  await source.kill();

  const started = performance.now();
  workers.push(
    ...(await Promise.all(
      Array.from({ length: WORKERS }, () => Sandbox.create({ snapshot: name })),
    )),
  );
  console.log(
    `${WORKERS} sandboxes started from the snapshot in ${Math.round(performance.now() - started)} ms`,
  );

  const parts = await Promise.all(
    workers.map(async (worker, i) => {
      const same = (await worker.commands.run("sha256sum /home/user/numbers.txt")).stdout;
      const part = await worker.commands.run(`python3 /home/user/worker.py ${i} ${WORKERS}`);
      // Private changes: this file appears in this sandbox only.
      await worker.files.write(`/home/user/worker-${i}.txt`, part.stdout);
      const own = await worker.commands.run("ls /home/user | grep -c '^worker-' || true");
      console.log(
        `worker ${i} (${worker.sandboxId}): same data ${same === checksum ? "yes" : "no"}, partial sum ${part.stdout.trim()}, worker files it sees: ${own.stdout.trim()}`,
      );
      return Number(part.stdout);
    }),
  );
  const combined = parts.reduce((a, b) => a + b, 0);
  console.log(
    `partial sums add up to ${combined}; the prepared sandbox computed ${total}: ${String(combined) === total ? "match" : "MISMATCH"}`,
  );
} finally {
  // Sandbox.kill(id) answers false for one already gone (the source, after the snapshot).
  await Promise.all([source, ...workers].map((s) => Sandbox.kill(s.sandboxId)));
  // A snapshot in use by sandboxes cannot be deleted, so it goes last.
  if (snapshotMade) await Snapshot.delete(name);
}
