import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "@wrenn/sdk";

// Pausing freezes a sandbox: its processes stop where they are, memory and files are kept, and it
// costs no CPU. Resuming (explicitly, or by connecting to it) carries on from the same point.

// Counts in memory and writes the count to a file every 100 ms. Were it restarted, it would
// count from 0 again; carrying on from where it stood shows its memory survived the pause.
const COUNTER = `
import itertools, time
for i in itertools.count():
    with open("/tmp/counter", "w") as f:
        f.write(str(i))
    time.sleep(0.1)
`;

const sandbox = await Sandbox.create();
const id = sandbox.sandboxId;
try {
  await sandbox.files.write("/home/user/notes.txt", "written before the pause\n");
  const counter = await sandbox.commands.run("python3", {
    args: ["-c", COUNTER],
    background: true,
    tag: "counter",
  });
  // Detach: the process keeps running without us listening.
  await counter.disconnect();
  await sleep(1000);
  const before = Number(await sandbox.files.read("/tmp/counter"));
  console.log(`counter before pause: ${before}`);

  await sandbox.pause();
  console.log(`state after pause(): ${(await sandbox.getInfo()).state}`);
  await sleep(1500);

  // Another client (or a later run of this script) only needs the id; connect resumes it.
  const again = await Sandbox.connect(id);
  console.log(`state after Sandbox.connect(): ${(await again.getInfo()).state}`);
  const after = Number(await again.files.read("/tmp/counter"));
  console.log(
    `counter after resume: ${after} (carried on from ${before}: ${after >= before ? "yes" : "no"})`,
  );
  const processes = await again.commands.list();
  const alive = processes.find((p) => p.tag === "counter");
  console.log(
    `counter process ${counter.pid} still running: ${alive?.pid === counter.pid ? "yes" : "no"}`,
  );
  console.log(`notes file: ${(await again.files.read("/home/user/notes.txt")).trim()}`);
  await sleep(500);
  const later = Number(await again.files.read("/tmp/counter"));
  console.log(
    `counter half a second later: ${later} (still counting: ${later > after ? "yes" : "no"})`,
  );
} finally {
  await Sandbox.kill(id);
}
