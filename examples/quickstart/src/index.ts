import { Sandbox } from "@wrenn/sdk";

// Credentials: WRENN_API_URL / WRENN_API_KEY, else ~/.wrenn/config.json (written by the
// server's first start). The sandbox uses the default template: Debian with python3 and node.
const sandbox = await Sandbox.create();
console.log(`created sandbox ${sandbox.sandboxId}`);

try {
  const hello = await sandbox.commands.run('echo "hello from $(hostname) as $(id -un)"');
  console.log(hello.stdout.trim());

  // A command writes a file; the files API reads it back.
  await sandbox.commands.run("python3 -c 'print(sum(range(1, 101)))' > /tmp/sum.txt");
  const sum = await sandbox.files.read("/tmp/sum.txt");
  console.log(`/tmp/sum.txt says: ${sum.trim()}`);

  // And the other way round: the files API writes, a command reads.
  await sandbox.files.write("/tmp/greeting.txt", "Hello, Wrenn!\n");
  const cat = await sandbox.commands.run("cat /tmp/greeting.txt");
  console.log(`cat /tmp/greeting.txt: ${cat.stdout.trim()}`);
} finally {
  // Sandboxes outlive the script unless killed (or paused by their idle timeout).
  await sandbox.kill();
  console.log(`killed sandbox ${sandbox.sandboxId}`);
}
