import { access, readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, Template, type TemplateBuildEvent } from "../src/index.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { ensureBuiltinTemplate, mirrorSkipReason } from "./helpers/template-cache.js";

// npm packages in template builds, for real: on `base` (Debian bookworm with nodejs, no npm) a
// template gets npm itself from the registry (Debian's `npm` package works too, by
// `aptInstall(["npm"])`, but unpacks some 300 node-* packages: minutes), then packages by
// `npmInstall` (global, and into a working directory not made yet), and a Dockerfile FROM that
// template installs more with `RUN npm install`. Needs root, Debian's mirror for `base` and the
// npm registry from a sandbox; `base` comes from WRENN_TEST_TEMPLATE_CACHE when CI built it.

const REGISTRY = "https://registry.npmjs.org/";
/** The host's CA bundle (Debian's path): the registry may answer through a TLS-intercepting proxy. */
const HOST_CA = "/etc/ssl/certs/ca-certificates.crt";
const SANDBOX_CA = "/etc/ssl/certs/wrenn-host-ca.crt";
/** npm for bookworm's Node 18, unpacked from its registry tarball and installed by itself. */
const NPM_TARBALL = `${REGISTRY}npm/-/npm-10.9.2.tgz`;
const INSTALL_NPM =
  `node -e "fetch('${NPM_TARBALL}').then(r => r.arrayBuffer())` +
  `.then(b => require('fs').writeFileSync('/tmp/npm.tgz', Buffer.from(b)))" && ` +
  "tar -xzf /tmp/npm.tgz -C /tmp && " +
  "node /tmp/package/bin/npm-cli.js install -g --no-fund --no-audit /tmp/npm.tgz && " +
  "rm -rf /tmp/package /tmp/npm.tgz && npm --version";

const skip = await mirrorSkipReason("needs Debian's mirror for base and npm");

describe.skipIf(skip)(
  `npm packages in template builds${skip ? ` (skipped: ${skip})` : ""}`,
  { timeout: 900_000 },
  () => {
    let server: TestServer;
    let conn: { apiUrl: string; apiKey: string };
    /** Why the registry cannot be used from a sandbox; undefined when it can. */
    let unreachable: string | undefined;
    /** Whether a sandbox needs the host's CA bundle to trust the registry. */
    let needsHostCa = false;
    const name = `npm-${Date.now().toString(36)}`;
    const built: string[] = [];

    /** The registry from a sandbox of `base`: with the sandbox's own CAs, then with the host's. */
    async function probeRegistry(): Promise<void> {
      const probe = await Sandbox.create({ ...conn, template: "base" });
      try {
        const fetchCmd =
          `node -e "fetch('${REGISTRY}is-number').then(r => { console.log(r.status); process.exit(r.ok ? 0 : 1) }, ` +
          `e => { console.log(String(e.cause?.code ?? e.message)); process.exit(1) })"`;
        const run = (envs: Record<string, string> = {}) =>
          probe.commands.run(fetchCmd, { envs, throwOnError: false, timeoutMs: 60_000 });
        const plain = await run();
        if (plain.exitCode === 0) return;
        const hasHostCa = await access(HOST_CA).then(
          () => true,
          () => false,
        );
        if (hasHostCa) {
          await probe.files.write("/tmp/host-ca.crt", await readFile(HOST_CA));
          const withCa = await run({ NODE_EXTRA_CA_CERTS: "/tmp/host-ca.crt" });
          if (withCa.exitCode === 0) {
            needsHostCa = true;
            return;
          }
        }
        unreachable = `the npm registry (${REGISTRY}) is not reachable from a sandbox: ${plain.stdout.trim() || plain.stderr.trim()}`;
      } finally {
        await probe.kill();
      }
    }

    const steps: string[] = [];
    const onLog = (event: TemplateBuildEvent) => {
      if (event.type === "step") steps.push(`${event.step}${event.cached ? " (cached)" : ""}`);
    };

    beforeAll(async () => {
      server = await startTestServer();
      conn = { apiUrl: server.url, apiKey: server.apiKey };
      const base = await ensureBuiltinTemplate(server, "base");
      console.log(`base template: ${base.seconds} s, ${base.sizeMiB} MiB`);
      await probeRegistry();
      if (unreachable) console.warn(`npm template tests skipped: ${unreachable}`);
      else if (needsHostCa)
        console.log("the registry answers through a proxy the host's CAs trust");
    }, 3_600_000);

    afterAll(async () => {
      for (const t of built.reverse()) {
        await fetch(`${conn.apiUrl}/v1/templates/${t}`, {
          method: "DELETE",
          headers: { "x-api-key": conn.apiKey },
        }).catch(() => {});
      }
      await server?.close();
    });

    it("installs npm, then packages globally and into a new workdir with npmInstall", async (ctx) => {
      if (unreachable) ctx.skip(unreachable);
      let recipe = Template.fromTemplate("base");
      // Behind a TLS-intercepting proxy, as a user there would: its CA for node (and npm).
      if (needsHostCa) {
        recipe = recipe
          .copy(HOST_CA, SANDBOX_CA, { user: "root" })
          .setEnvs({ NODE_EXTRA_CA_CERTS: SANDBOX_CA });
      }
      recipe = recipe
        .runCmd(INSTALL_NPM, { user: "root" })
        .npmInstall(["is-number@7.0.0"], { global: true })
        .setWorkdir("/home/user/app")
        .npmInstall(["left-pad@1.3.0"]);
      const started = performance.now();
      const info = await Template.build(recipe, { ...conn, name, onLog });
      built.push(name);
      console.log(
        `npm template (npm + 2 npm installs): ${Math.round((performance.now() - started) / 1000)} s; steps: ${steps.join(" | ")}`,
      );
      expect(info).toMatchObject({ name, version: 1 });
      expect(steps).toContain("NPM INSTALL -g is-number@7.0.0");
      expect(steps).toContain("NPM INSTALL left-pad@1.3.0");

      const sandbox = await Sandbox.create({ ...conn, template: name });
      try {
        const global = await sandbox.commands.run(
          `node -p "require(require('path').join('$(npm root -g)', 'is-number'))('5')"`,
        );
        expect(global.stdout.trim()).toBe("true");
        // Into the workdir (made for the step, as Docker does, the user's); sandboxes start there.
        const local = await sandbox.commands.run(
          "pwd; stat -c %U . node_modules/left-pad; node -p \"require('left-pad')('x', 3, '-')\"",
        );
        expect(local.stdout).toBe("/home/user/app\nuser\nuser\n--x\n");
      } finally {
        // Generous: a loaded machine takes its time to tear a big sandbox down.
        await sandbox.kill({ timeoutMs: 300_000 });
      }
    });

    it("runs a Dockerfile's RUN npm install, FROM that template", async (ctx) => {
      if (unreachable) ctx.skip(unreachable);
      if (!built.includes(name)) ctx.skip("the npm template was not built (see the test before)");
      const dockerName = `${name}-docker`;
      const dockerfile = [
        `FROM wrenn/${name}`,
        "RUN npm install -g --no-fund --no-audit is-odd@3.0.1",
        "WORKDIR /srv/web",
        "RUN npm install --no-fund --no-audit is-even@1.0.0",
      ].join("\n");
      steps.length = 0;
      const info = await Template.build(Template.fromDockerfile(dockerfile), {
        ...conn,
        name: dockerName,
        onLog,
      });
      built.push(dockerName);
      expect(info).toMatchObject({ name: dockerName, version: 1 });
      expect(steps).toEqual([
        "RUN npm install -g --no-fund --no-audit is-odd@3.0.1",
        // The parser makes the WORKDIR as Docker does.
        "RUN mkdir -p /srv/web",
        "WORKDIR /srv/web",
        "RUN npm install --no-fund --no-audit is-even@1.0.0",
      ]);

      const sandbox = await Sandbox.create({ ...conn, template: dockerName });
      try {
        const out = await sandbox.commands.run(
          `pwd; node -p "require(require('path').join('$(npm root -g)', 'is-odd'))(3)"; ` +
            `node -p "require('is-even')(4)"`,
        );
        // is-odd globally, is-even into the workdir (where sandboxes start).
        expect(out.stdout).toBe("/srv/web\ntrue\ntrue\n");
      } finally {
        // Generous: a loaded machine takes its time to tear a big sandbox down.
        await sandbox.kill({ timeoutMs: 300_000 });
      }
    });
  },
);
