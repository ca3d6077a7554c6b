import { BaseCommand } from "../base/index.js";
import { checkLines, runDoctor } from "../services/doctor.js";

export default class Doctor extends BaseCommand<typeof Doctor> {
  static override summary =
    "Check this host for what running sandboxes needs, and say how to fix what is missing.";
  static override enableJsonFlag = true;

  async run(): Promise<Record<string, unknown> | undefined> {
    const report = await runDoctor();
    if (this.jsonEnabled()) {
      if (!report.ok) process.exitCode = 1;
      return { ...report };
    }
    for (const line of checkLines(report)) this.log(line);
    if (report.installCommand)
      this.log(`\nInstall what is missing with:\n  ${report.installCommand}`);
    if (report.optionalInstallCommand)
      this.log(`\nOptional (microVMs, the base template):\n  ${report.optionalInstallCommand}`);
    this.log(
      report.ok
        ? "\nThis host can run sandboxes."
        : "\nThis host cannot run sandboxes yet: fix the ✗ lines above.",
    );
    if (!report.ok) this.exit(1);
    return undefined;
  }
}
