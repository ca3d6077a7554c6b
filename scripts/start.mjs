// `npm start`: runs Wrenn on this machine. For now that is envd, the daemon inside every sandbox,
// standalone on the host; it grows into the single-host server as the agent and server land.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawnEnvd } from "@wrenn/envd";
import { Process } from "@wrenn/proto/process";

const port = Number(process.env.WRENN_ENVD_PORT ?? 49983);
const envd = await spawnEnvd({ port, onLog: (line) => process.stderr.write(`${line}\n`) });
const client = createClient(
  Process,
  createConnectTransport({ baseUrl: envd.url, httpVersion: "1.1" }),
);

let output = "";
for await (const { event } of client.start({ process: { cmd: "uname", args: ["-srm"] } })) {
  if (event?.event.case === "data" && event.event.value.output.case === "stdout") {
    output += Buffer.from(event.event.value.output.value).toString();
  }
}

console.log(`
envd is running at ${envd.url} (pid ${envd.pid}); it just ran \`uname -srm\`: ${output.trim()}

Try it:
  curl -s ${envd.url}/health -o /dev/null -w '%{http_code}\\n'
  curl -s ${envd.url}/metrics
  curl -s -X POST ${envd.url}/filesystem.Filesystem/ListDir -H 'content-type: application/json' -d '{"path":"/tmp"}'

Ctrl-C stops it.`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => void envd.stop().then(() => process.exit(0)));
}
