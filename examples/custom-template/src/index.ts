import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Sandbox, Template, type TemplateBuildEvent } from "@wrenn/sdk";

// Build a template in code: Debian's jq from apt, a small service copied in, its environment,
// and a start command that every sandbox of the template has running (and answering) before
// it is handed out. Then change the last step and build again: the earlier steps come from the
// layer cache. Finally build the same thing from a Dockerfile.

const here = fileURLToPath(new URL("..", import.meta.url));
const name = `custom-${Date.now().toString(36)}`;

/** Prints each step as the build reaches it, and whether the cache served it. */
function log(event: TemplateBuildEvent): void {
  if (event.type === "step") {
    console.log(
      `  [${event.index + 1}/${event.total}] ${event.step}${event.cached ? " (cached)" : ""}`,
    );
  }
}

const recipe = (version: string) =>
  Template.fromTemplate("base")
    .aptInstall(["jq"])
    .copy(`${here}app`, "/opt/app", { user: "root" })
    .setEnvs({ GREETING: "hello from a custom template" })
    .setWorkdir("/opt/app")
    .runCmd(`echo ${version} > /opt/app/VERSION`, { user: "root" })
    .setStartCmd("python3 server.py", { port: 8000 });

const made: string[] = [];
let sandbox: Sandbox | undefined;
try {
  console.log(`building ${name}`);
  let started = performance.now();
  const first = await Template.build(recipe("v1"), { name, onLog: log });
  made.push(name);
  const firstMs = performance.now() - started;
  console.log(`built ${first.name} version ${first.version} in ${Math.round(firstMs)} ms`);

  console.log(`rebuilding ${name} with a changed last step`);
  started = performance.now();
  const second = await Template.build(recipe("v2"), { name, onLog: log });
  const secondMs = performance.now() - started;
  console.log(
    `built ${second.name} version ${second.version} in ${Math.round(secondMs)} ms (${(secondMs / firstMs).toFixed(2)}× the first)`,
  );

  sandbox = await Sandbox.create({ template: name });
  const answer = await sandbox.commands.run(
    "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000').read().decode())\" | jq -c .",
  );
  console.log(`the start command answers: ${answer.stdout.trim()}`);
  console.log(`version file: ${(await sandbox.files.read("/opt/app/VERSION")).trim()}`);
  await sandbox.kill();
  sandbox = undefined;

  const dockerName = `${name}-docker`;
  console.log(`building ${dockerName} from the Dockerfile`);
  const dockerfile = await readFile(`${here}Dockerfile`, "utf8");
  const fromDockerfile = Template.fromDockerfile(dockerfile, { contextDir: here });
  const start = fromDockerfile.steps.find((s) => s.type === "start");
  if (start?.type === "start") start.ready = { port: 8000 };
  await Template.build(fromDockerfile, { name: dockerName, onLog: log });
  made.push(dockerName);
  sandbox = await Sandbox.create({ template: dockerName });
  const jq = await sandbox.commands.run("jq --version");
  const greeting = await sandbox.commands.run("echo $GREETING");
  console.log(`from the Dockerfile: ${jq.stdout.trim()}, GREETING=${greeting.stdout.trim()}`);

  const versions = (await Template.list()).filter((t) => made.includes(t.name));
  console.log(`templates: ${versions.map((t) => `${t.name}@${t.version}`).join(", ")}`);
} finally {
  await sandbox?.kill();
  for (const t of made) await Template.delete(t);
}
