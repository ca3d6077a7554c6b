// Writes oclif.manifest.json (what `oclif manifest` does) from the bundle's commands, so that oclif
// reads their ids, flags and help from JSON at each start instead of walking every command class.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Plugin } from "@oclif/core";

const root = fileURLToPath(new URL("..", import.meta.url));
const plugin = new Plugin({
  root,
  type: "core",
  ignoreManifest: true,
  errorOnManifestCreate: true,
});
await plugin.load();
writeFileSync(
  new URL("../oclif.manifest.json", import.meta.url),
  `${JSON.stringify(plugin.manifest)}\n`,
);
console.log(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`);
