// Writes oclif.manifest.json (what `oclif manifest` does) so a command starts by loading only its
// own file instead of importing every command to learn their flags.
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
